"""``trainer.gap_subset``: the size of the training subset on which the gap is measured."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from droptune.callbacks import GapCallback, gap_subset_size
from droptune.config import spec_from_dict
from droptune.exceptions import ConfigError
from droptune.packing import PackedData
from droptune.testing import TinyDataModule, TinyModule


def _fit(model: TinyModule, data: TinyDataModule, gap: GapCallback) -> None:
    trainer = pl.Trainer(
        max_epochs=2, accelerator="cpu", callbacks=[gap], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)


@pytest.mark.parametrize(
    ("subset", "rows"),
    [(None, 200), (1.0, 200), (0.25, 50), (0.001, 1), (64, 64), (1, 1), (5000, 1000)],
    ids=["default-as-validation", "fraction-1", "fraction", "tiny-fraction-at-least-1", "rows", "one-row",
         "rows-capped-by-train"],
)
def test_the_size_of_the_subset(subset: int | float | None, rows: int) -> None:
    assert gap_subset_size(1000, 200, subset) == rows


def test_default_is_the_validation_size_capped_by_the_training_set() -> None:
    assert gap_subset_size(100, 300) == 100
    assert gap_subset_size(100, 0) == 100  # validation size unknown: the training set's


@pytest.mark.parametrize("subset", [None, 0.25, 8])
def test_the_callback_measures_the_eval_loss_on_that_many_rows_in_the_same_order(subset: int | float | None) -> None:
    pl.seed_everything(0, verbose=False)
    data = TinyDataModule(n_train=96, n_val=32)
    model = TinyModule(p=0.6)
    gap = GapCallback(seed=5, subset=subset)
    _fit(model, data, gap)
    n = gap_subset_size(96, 32, subset)
    assert n == {None: 32, 0.25: 8, 8: 8}[subset]
    assert gap._subset is not None and len(gap._subset.dataset) == n
    # The same rows as the default subset's first n: a smaller subset is a prefix, not another draw.
    order = torch.randperm(96, generator=torch.Generator().manual_seed(5))[:n].tolist()
    model.eval()
    with torch.no_grad():
        x, y = next(iter(DataLoader(Subset(data.train_dataset, order), batch_size=n)))
        expected = float(model.loss_fn(model(x), y))
    assert gap.history[-1]["train_loss_eval"] == pytest.approx(expected, rel=1e-5)
    assert gap.history[-1]["overfit_gap"] == pytest.approx(
        gap.history[-1]["val_loss"] - gap.history[-1]["train_loss_eval"]
    )


@pytest.mark.parametrize("subset", [None, 0.5, 4])
def test_packed_data_draws_the_same_subset(subset: int | float | None) -> None:
    data = TinyDataModule(n_train=96, n_val=32)
    packed = PackedData.from_datamodule(data, device=torch.device("cpu"), seed=5, gap_subset=subset)
    n = gap_subset_size(96, 32, subset)
    order = torch.randperm(96, generator=torch.Generator().manual_seed(5))[:n]
    assert len(packed.x_fit) == n
    assert torch.equal(packed.x_fit, data.train_dataset.tensors[0][order])


def _spec(gap_subset: object) -> object:
    return spec_from_dict(
        {"name": "x", "model": "droptune.testing.TinyModule", "data": "droptune.testing.TinyDataModule",
         "trainer": {"gap_subset": gap_subset}}
    )


def test_the_study_file_takes_rows_a_fraction_or_null() -> None:
    for value in (None, 1, 512, 0.1, 1.0):
        assert _spec(value).trainer.gap_subset == value  # type: ignore[attr-defined]
    for bad in (0, -3, 1.5, 0.0, "half", True):
        with pytest.raises(ConfigError, match=r"trainer.gap_subset must be an integer >= 1 or a finite number in \(0, 1\]"):
            _spec(bad)
