"""Tests of droptune.data.Mnist1dDataModule: local generation, splits, caching, seeding."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from droptune.data import Mnist1dDataModule
from droptune.data._mnist1d import generate_mnist1d
from droptune.exceptions import ConfigError


def rows(dataset: torch.utils.data.TensorDataset) -> set[bytes]:
    return {row.numpy().tobytes() for row in dataset.tensors[0]}


def test_shapes_dtypes_and_split_sizes() -> None:
    data = Mnist1dDataModule()
    x, y = next(iter(data.train_dataloader()))
    assert tuple(x.shape) == (128, 40) and data.input_shape == (40,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert data.num_classes == 10 and set(y.tolist()) <= set(range(10))
    assert (len(data.train_dataset), len(data.val_dataset), len(data.test_dataset)) == (
        4000,
        1000,
        1000,
    )


def test_splits_are_disjoint_and_test_is_mnist1d_holdout() -> None:
    data = Mnist1dDataModule()
    train, val, test = rows(data.train_dataset), rows(data.val_dataset), rows(data.test_dataset)
    assert len(train) == 4000 and len(val) == 1000 and len(test) == 1000
    assert not (train & val) and not (train & test) and not (val & test)
    _, _, x_test, _ = generate_mnist1d()
    assert torch.equal(data.test_dataset.tensors[0], torch.from_numpy(x_test.copy()))
    # Stratified: validation takes a fifth of each class of the 5000 non-test rows.
    val_counts = np.bincount(data.val_dataset.tensors[1].numpy(), minlength=10)
    all_counts = val_counts + np.bincount(data.train_dataset.tensors[1].numpy(), minlength=10)
    assert np.abs(val_counts - all_counts / 5).max() <= 1


def test_same_seed_same_data_and_order() -> None:
    a, b = Mnist1dDataModule(train_size=500, seed=1), Mnist1dDataModule(train_size=500, seed=1)
    for part in ("train_dataset", "val_dataset", "test_dataset"):
        assert torch.equal(getattr(a, part).tensors[0], getattr(b, part).tensors[0])
    assert torch.equal(next(iter(a.train_dataloader()))[0], next(iter(b.train_dataloader()))[0])
    other = Mnist1dDataModule(train_size=500, seed=2)
    assert rows(other.val_dataset) != rows(a.val_dataset)
    assert torch.equal(other.test_dataset.tensors[0], a.test_dataset.tensors[0])  # fixed test set


@pytest.mark.parametrize("train_size", [250, 1000, 4000])
def test_train_size_subsamples_the_pool(train_size: int) -> None:
    data = Mnist1dDataModule(train_size=train_size)
    labels = data.train_dataset.tensors[1].numpy()
    assert len(labels) == train_size
    counts = np.bincount(labels, minlength=10)
    assert counts.max() - counts.min() <= 0.05 * train_size + 2  # stratified
    assert rows(data.train_dataset) <= rows(Mnist1dDataModule().train_dataset)


def test_generation_is_cached_and_leaves_global_rngs_alone() -> None:
    assert generate_mnist1d() is generate_mnist1d()
    random.seed(7)
    np.random.seed(7)
    expected = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    x, y, x_test, _ = generate_mnist1d(num_samples=1100)  # small: generated afresh
    assert (random.random(), np.random.rand()) == expected
    assert x.shape == (100, 40) and x_test.shape == (1000, 40) and x.dtype == np.float32
    assert not x.flags.writeable and y.dtype == np.int64


@pytest.mark.parametrize(
    ("train_size", "match"),
    [(5, r"got 5"), (4001, r"got 4001"), (2.5, r"got 2.5")],
    ids=["too-small", "too-large", "float"],
)
def test_bad_train_size_raises_config_error(train_size: object, match: str) -> None:
    with pytest.raises(ConfigError, match=r"train_size must be an int .*\[10, 4000\].*" + match):
        Mnist1dDataModule(train_size=train_size)  # type: ignore[arg-type]
