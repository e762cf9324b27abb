"""A multilayer perceptron with input dropout and dense dropout after every hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from typing_extensions import override

from droptune.models._base import ClassifierModule


class MLP(ClassifierModule):
    """Input dropout, then ``Linear -> ReLU -> Dropout`` per hidden layer, then a linear head.

    Inputs of any shape ``(B, ...)`` are flattened, so it fits MNIST-1D ``(B, 40)`` and
    digits ``view="flat"`` ``(B, 64)`` (``in_features=64``).

    Args:
        in_features: Features of a flattened input (default 40, MNIST-1D).
        hidden: Width of each hidden layer (default two of 256).
        num_classes: Output logits (default 10).
        input_dropout: Drop probability on the input, in [0, 1) (default 0.1).
        dropout: Drop probability after each hidden layer, in [0, 1) (default 0.5).
        lr: AdamW learning rate (default 1e-3).
        weight_decay: AdamW weight decay (default 0).

    Example:
        >>> from droptune import discover
        >>> [(s.name, s.layer_type) for s in discover(MLP())]
        [('input_dropout', 'input'), ('hidden.2', 'dense'), ('hidden.5', 'dense')]
    """

    def __init__(
        self,
        *,
        in_features: int = 40,
        hidden: Sequence[int] = (256, 256),
        num_classes: int = 10,
        input_dropout: float = 0.1,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.input_dropout = nn.Dropout(input_dropout)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.input_dropout(x.flatten(1))))
