"""Tests of droptune.data.DigitsDataModule: views, splits, seeding and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from droptune.data import DigitsDataModule, DigitsView
from droptune.exceptions import ConfigError

SHAPES: dict[DigitsView, tuple[int, ...]] = {
    "image": (1, 8, 8),
    "flat": (64,),
    "sequence": (8, 8),
    "patches": (16, 4),
}


def rows(dataset: torch.utils.data.TensorDataset) -> set[bytes]:
    return {row.numpy().tobytes() for row in dataset.tensors[0]}


@pytest.mark.parametrize("view", list(SHAPES), ids=list(SHAPES))
def test_view_shapes_dtypes_and_sizes(view: DigitsView) -> None:
    data = DigitsDataModule(view=view, batch_size=32)
    x, y = next(iter(data.train_dataloader()))
    assert data.input_shape == SHAPES[view]
    assert tuple(x.shape) == (32, *SHAPES[view])
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert data.num_classes == 10
    assert (len(data.train_dataset), len(data.val_dataset), len(data.test_dataset)) == (
        400,
        400,
        400,
    )
    for dataset in (data.train_dataset, data.val_dataset, data.test_dataset):
        inputs = dataset.tensors[0]
        assert float(inputs.min()) >= 0.0 and float(inputs.max()) <= 1.0
    assert float(data.train_dataset.tensors[0].max()) == 1.0  # scaled by 16, not by 255


def test_views_lay_out_the_same_pixels() -> None:
    image = DigitsDataModule(view="image").val_dataset.tensors[0][:, 0]
    sequence = DigitsDataModule(view="sequence").val_dataset.tensors[0]
    patches = DigitsDataModule(view="patches").val_dataset.tensors[0]
    flat = DigitsDataModule(view="flat").val_dataset.tensors[0]
    assert torch.equal(sequence, image)  # time step t is image row t
    assert torch.equal(flat, image.reshape(-1, 64))
    # Patch k = 2x2 block (row k // 4, column k % 4), read row-major.
    assert torch.equal(patches[:, 0], image[:, 0:2, 0:2].reshape(-1, 4))
    assert torch.equal(patches[:, 1], image[:, 0:2, 2:4].reshape(-1, 4))
    assert torch.equal(patches[:, 4], image[:, 2:4, 0:2].reshape(-1, 4))
    assert torch.equal(patches[:, 15], image[:, 6:8, 6:8].reshape(-1, 4))


def test_pixels_match_load_digits() -> None:
    source = {
        row.tobytes(): label for row, label in zip(load_digits().data / 16.0, load_digits().target)
    }
    data = DigitsDataModule(view="flat")
    for x, y in zip(*data.test_dataset.tensors):
        assert source[x.double().numpy().tobytes()] == int(y)


def test_splits_are_disjoint_and_cover_the_pool() -> None:
    data = DigitsDataModule(view="flat", train_size=997)
    train, val, test = rows(data.train_dataset), rows(data.val_dataset), rows(data.test_dataset)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 1797


def test_same_seed_same_splits_other_seed_other_splits() -> None:
    a, b = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    for part in ("train_dataset", "val_dataset", "test_dataset"):
        for ta, tb in zip(getattr(a, part).tensors, getattr(b, part).tensors):
            assert torch.equal(ta, tb)
    other = DigitsDataModule(seed=4)
    assert rows(other.test_dataset) != rows(a.test_dataset)


def test_train_size_is_respected_and_stratified() -> None:
    data = DigitsDataModule(train_size=100)
    labels = data.train_dataset.tensors[1]
    assert len(labels) == 100
    assert np.bincount(labels.numpy(), minlength=10).tolist() == [10] * 10
    # A smaller training set leaves validation and test untouched.
    full = DigitsDataModule(train_size=400)
    assert torch.equal(data.val_dataset.tensors[0], full.val_dataset.tensors[0])
    assert rows(data.train_dataset) <= rows(DigitsDataModule(train_size=997).train_dataset)


def test_training_order_is_shuffled_and_seeded() -> None:
    first = [next(iter(DigitsDataModule(seed=s).train_dataloader()))[1] for s in (0, 0)]
    assert torch.equal(first[0], first[1])
    data = DigitsDataModule()
    batch = next(iter(data.train_dataloader()))[1]
    assert not torch.equal(batch, data.train_dataset.tensors[1][:64])
    val_batch = next(iter(data.val_dataloader()))[1]
    assert torch.equal(val_batch, data.val_dataset.tensors[1][:64])  # evaluation in order


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"view": "pixels"},
            r"view must be one of 'image', 'flat', 'sequence', 'patches'; got 'pixels'",
        ),
        ({"train_size": 0}, r"train_size must be an int in \[10, 997\]; got 0"),
        ({"train_size": 998}, r"train_size must be an int in \[10, 997\]; got 998"),
        ({"train_size": "400"}, r"train_size must be an int .*got '400'"),
        ({"batch_size": 0}, r"batch_size must be an int in >= 1; got 0"),
        ({"num_workers": -1}, r"num_workers .* got -1"),
    ],
    ids=[
        "view",
        "train_size-low",
        "train_size-high",
        "train_size-str",
        "batch_size",
        "num_workers",
    ],
)
def test_bad_arguments_raise_config_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        DigitsDataModule(**kwargs)  # type: ignore[arg-type]
