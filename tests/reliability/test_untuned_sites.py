"""A dropout that runs only on some batches is not tuned: ``tune`` says so, and the export names it."""

from __future__ import annotations

import logging

import torch
from torch import nn

import droptune
from droptune.export import export_best
from droptune.testing import TinyDataModule, TinyModule

TRAINER = {"max_epochs": 1, "early_stopping_patience": None, "accelerator": "cpu"}


class SometimesDropped(TinyModule):
    """TinyModule plus ``rare``, a dropout that runs on every other forward call only: the
    example forward pass that finds and types the sites is a call on which it does not run."""

    def __init__(self) -> None:
        super().__init__()
        self.rare = nn.Dropout(0.4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = super().forward(x)
        return self.rare(out) if self.calls % 2 == 0 else out


def test_a_dropout_that_never_ran_on_the_example_is_named_by_tune_and_by_the_export(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="droptune.tuning._lifecycle")
    result = droptune.tune(model=SometimesDropped, datamodule=TinyDataModule(), name="sometimes", n_trials=2,
                           trainer=TRAINER, storage=f"sqlite:///{tmp_path / 'o.db'}", tracking_uri="none")
    warned = [r.getMessage() for r in caplog.records if "never ran on the example input" in r.getMessage()]
    assert len(warned) == 1 and "rare (0.4)" in warned[0] and "not tuned" in warned[0]
    # the tuned sites were searched, the rare one was not: every trial kept its built rate
    assert all("rare" not in t.params for t in result.study.trials)
    config = export_best(result.study)
    assert config["untuned"] == ["rare"]
    assert config["rates"]["rare"] == 0.4 and set(config["rates"]) == {"input_dropout", "dropout", "rare"}


def test_a_model_whose_dropouts_all_ran_exports_no_untuned_key(tmp_path):
    result = droptune.tune(model=TinyModule, datamodule=TinyDataModule(), name="all", n_trials=1,
                           trainer=TRAINER, storage=f"sqlite:///{tmp_path / 'o.db'}", tracking_uri="none")
    assert "untuned" not in export_best(result.study)
