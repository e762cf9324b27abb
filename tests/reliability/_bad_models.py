"""LightningModules that break the study contract in one way each, for pre-flight tests.

Study files name them as ``_bad_models.<Class>``; tests put this folder on ``sys.path``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from typing_extensions import override

from droptune.testing import TinyModule


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
