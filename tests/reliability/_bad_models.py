"""LightningModules that break the study contract in one way each (pre-flight tests), and one
that waits or hangs on cue (fault tests).

Study files name them as ``_bad_models.<Class>``; tests put this folder on ``sys.path``
(``PYTHONPATH`` for subprocesses).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset
from typing_extensions import override

from droptune.testing import TinyDataModule, TinyModule

DEADLINE_S = 120.0


class NoValLossModule(TinyModule):
    """Its validation_step logs ``loss``, not ``val_loss``."""

    @override
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("loss", nn.functional.cross_entropy(self(x), y))


class NanLossModule(TinyModule):
    """Its loss is NaN from the first batch."""

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return super().training_step(batch, batch_idx) * math.nan


class CrashingModule(TinyModule):
    """Its training_step has a bug."""

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (16x8 and 9x16)")


class NoDropoutModule(TinyModule):
    """No dropout anywhere: nothing to tune."""

    def __init__(self) -> None:
        super().__init__()
        self.input_dropout = nn.Identity()
        self.dropout = nn.Identity()


class ArrayTinyModule(TinyModule):
    """For job-array tests: each process's first fit waits for the others; with a cue, it hangs.

    ``DROPTUNE_TEST_BARRIER`` (a folder) and ``DROPTUNE_TEST_BARRIER_N``: the first fit of a
    process drops a file named after its pid there and waits until N processes did, so every
    process provably runs a trial at the same time as the others (until the test creates
    ``release`` in that folder, with ``DROPTUNE_TEST_HOLD``). ``DROPTUNE_TEST_HANG``:
    every training step of this process's trials waits (to be terminated) instead of
    training. droptune's pre-flight batch does neither.
    """

    @override
    def on_fit_start(self) -> None:
        # droptune's pre-flight batch (fast_dev_run) neither waits nor hangs: trials do.
        self._hang = bool(os.environ.get("DROPTUNE_TEST_HANG")) and not self.trainer.fast_dev_run
        if self.trainer.fast_dev_run:
            return
        folder = os.environ.get("DROPTUNE_TEST_BARRIER")
        marker = Path(folder, str(os.getpid())) if folder else None
        if marker is None or marker.exists():
            return
        marker.touch()
        wanted = int(os.environ.get("DROPTUNE_TEST_BARRIER_N", "1"))
        end = time.monotonic() + DEADLINE_S
        while len([f for f in os.listdir(folder) if f.isdigit()]) < wanted:
            if time.monotonic() > end:
                raise RuntimeError(f"barrier: {len(os.listdir(folder))} of {wanted} processes arrived")
            time.sleep(0.05)
        # With DROPTUNE_TEST_HOLD, the trials then wait for the test's `release` file in the
        # barrier folder: the test acts while every process provably trains.
        while os.environ.get("DROPTUNE_TEST_HOLD") and not Path(folder, "release").exists():
            if time.monotonic() > end:
                raise RuntimeError("barrier: never released")
            time.sleep(0.05)

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        end = time.monotonic() + DEADLINE_S
        while self._hang:  # waits to be terminated; bounded in case it is not
            if time.monotonic() > end:
                raise RuntimeError("ArrayTinyModule was never terminated")
            time.sleep(0.05)
        return super().training_step(batch, batch_idx)


class OddNamesModule(TinyModule):
    """Its dropout sites sit in an ``nn.ModuleDict`` under keys MLflow refuses as param names."""

    def __init__(self) -> None:
        super().__init__()
        self.drops = nn.ModuleDict({"head(p)": nn.Dropout(0.1), "a/b:c": nn.Dropout(0.2)})

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.drops["head(p)"](torch.relu(self.fc1(self.input_dropout(x))))
        return self.fc2(self.drops["a/b:c"](self.dropout(hidden)))


class EmptyValData(TinyDataModule):
    """Its validation set has no rows."""

    @override
    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        train, val, test = super().build()
        return train, TensorDataset(*(t[:0] for t in val.tensors)), test
