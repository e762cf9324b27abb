"""Models the packing tests share."""

from __future__ import annotations

import torch

from droptune.testing import TinyModule


class BatchNormModule(TinyModule):
    """TinyModule with a BatchNorm layer: packed training refuses its running statistics."""

    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.norm = torch.nn.BatchNorm1d(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.norm(torch.relu(self.fc1(self.input_dropout(x))))))
