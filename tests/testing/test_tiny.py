"""Tests of droptune.testing: the tiny model and data used by fast integration tests."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from droptune import apply_rates, discover
from droptune.exceptions import ConfigError
from droptune.models import ClassifierModule
from droptune.testing import TinyDataModule, TinyModule


def quiet_trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def test_tiny_module_has_an_input_and_a_dense_site() -> None:
    model = TinyModule(p=0.4)
    x, _ = next(iter(TinyDataModule().train_dataloader()))
    for sites in (discover(model), discover(model, example_input=x)):
        assert [(s.name, s.layer_type, s.rate) for s in sites] == [
            ("input_dropout", "input", 0.1),
            ("dropout", "dense", 0.4),
        ]
    assert isinstance(model, ClassifierModule)
    assert tuple(model(x).shape) == (16, 3)
    apply_rates(model, {"input_dropout": 0.0, "dropout": 0.25})
    assert model.input_dropout.p == 0.0 and model.dropout.p == 0.25


def test_tiny_data_shapes_sizes_and_seeding() -> None:
    data = TinyDataModule(n_train=40, n_val=20, n_test=10, in_features=5, num_classes=4)
    x, y = next(iter(data.train_dataloader()))
    assert tuple(x.shape) == (16, 5) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (len(data.train_dataset), len(data.val_dataset), len(data.test_dataset)) == (40, 20, 10)
    assert data.input_shape == (5,) and data.num_classes == 4
    assert set(data.train_dataset.tensors[1].tolist()) == {0, 1, 2, 3}
    same = TinyDataModule(n_train=40, n_val=20, n_test=10, in_features=5, num_classes=4)
    assert torch.equal(same.val_dataset.tensors[0], data.val_dataset.tensors[0])
    assert torch.equal(next(iter(same.train_dataloader()))[0], x)
    other = TinyDataModule(n_train=40, n_val=20, n_test=10, in_features=5, num_classes=4, seed=1)
    assert not torch.equal(other.val_dataset.tensors[0], data.val_dataset.tensors[0])


def test_one_epoch_logs_the_metric_contract() -> None:
    torch.manual_seed(0)
    trainer = quiet_trainer(1)
    trainer.fit(TinyModule(), TinyDataModule())
    assert {"train_loss", "val_loss", "val_acc"} <= set(trainer.callback_metrics)
    assert trainer.current_epoch == 1


def test_tiny_module_learns_within_a_second_or_so() -> None:
    torch.manual_seed(0)
    model, data = TinyModule(), TinyDataModule()
    trainer = quiet_trainer(10)
    trainer.fit(model, data)
    assert float(trainer.callback_metrics["val_acc"]) >= 0.6  # chance is 1/3
    (results,) = trainer.test(model, data, verbose=False)
    assert results["test_acc"] >= 0.6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"num_classes": 9, "in_features": 3},
            r"num_classes must be at most 2 \*\* in_features = 8; got 9",
        ),
        ({"n_train": 0}, r"n_train must be an int in >= 1; got 0"),
        ({"num_classes": 1}, r"num_classes must be an int in >= 2; got 1"),
    ],
    ids=["too-many-classes", "no-rows", "one-class"],
)
def test_bad_sizes_raise_config_error(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TinyDataModule(**kwargs)
