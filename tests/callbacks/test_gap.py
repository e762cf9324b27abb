"""GapCallback: losses measured with dropout off, through the module's own validation_step."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from droptune.callbacks import GapCallback
from droptune.exceptions import ConfigError
from droptune.testing import TinyDataModule, TinyModule


def fit(model, data, callback, epochs=3):
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data)
    return trainer


def mean_eval_loss(model, dataset, batch_size):
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            total += float(model.loss_fn(model(x), y)) * len(y)
            n += len(y)
    return total / n


def test_one_record_per_epoch_with_gap_equal_to_val_minus_train_eval():
    pl.seed_everything(0, verbose=False)
    gap = GapCallback()
    fit(TinyModule(p=0.5), TinyDataModule(), gap, epochs=3)
    assert [r["epoch"] for r in gap.history] == [0.0, 1.0, 2.0]
    for record in gap.history:
        assert set(record) >= {"train_loss", "train_loss_eval", "val_loss", "val_acc", "overfit_gap"}
        assert record["overfit_gap"] == pytest.approx(record["val_loss"] - record["train_loss_eval"])


def test_train_loss_eval_is_the_eval_mode_loss_on_a_fixed_subset_as_large_as_validation():
    pl.seed_everything(0, verbose=False)
    data = TinyDataModule(n_train=96, n_val=32)
    model = TinyModule(p=0.6)
    gap = GapCallback(seed=5)
    fit(model, data, gap, epochs=2)
    subset = gap._subset
    assert len(subset.dataset) == 32
    order = torch.randperm(96, generator=torch.Generator().manual_seed(5))[:32].tolist()
    expected = mean_eval_loss(model, Subset(data.train_dataset, order), batch_size=16)
    # the last record was measured with the final weights: recompute by hand in eval mode
    assert gap.history[-1]["train_loss_eval"] == pytest.approx(expected, rel=1e-5)
    # with heavy dropout the loss as trained is inflated above the eval-mode loss
    assert gap.history[-1]["train_loss"] > gap.history[-1]["train_loss_eval"]
    assert "log" not in vars(model), "the capturing log() must be removed from the instance"


class NoValLoss(TinyModule):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("valid/loss", self.loss_fn(self(x), y))


def test_a_module_that_does_not_log_val_loss_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"NoValLoss.validation_step must log 'val_loss'"):
        fit(NoValLoss(), TinyDataModule(), GapCallback(), epochs=1)


class ExplodingModule(TinyModule):
    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.tensor(float("nan")))


def test_non_finite_loss_stops_training_and_says_why():
    gap = GapCallback()
    trainer = fit(ExplodingModule(), TinyDataModule(), gap, epochs=5)
    assert gap.non_finite is not None and "val_loss" in gap.non_finite and "epoch 0" in gap.non_finite
    assert trainer.current_epoch == 1  # stopped after the first epoch instead of running 5
