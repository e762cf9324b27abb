"""Small convolutional classifiers with spatial (channel) dropout and a dense head."""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import override

from droptune.models._base import ClassifierModule


def _head(in_features: int, width: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(width, num_classes),
    )


class Mnist1dCNN(ClassifierModule):
    """A 1-D CNN for MNIST-1D ``(B, 40)``: three strided conv blocks, then a dense head.

    Each conv block is ``Conv1d -> ReLU -> Dropout1d`` (spatial dropout zeroes whole
    channels); the length halves at each block, 40 -> 20 -> 10 -> 5.

    Args:
        channels: Channels of every conv layer (default 32).
        num_classes: Output logits (default 10).
        spatial_dropout: Drop probability of the Dropout1d layers, in [0, 1) (default 0.25).
        dropout: Drop probability of the dense head, in [0, 1) (default 0.5).
        lr: AdamW learning rate (default 1e-3).
        weight_decay: AdamW weight decay (default 0).

    Example:
        >>> from droptune import discover
        >>> for site in discover(Mnist1dCNN()):
        ...     print(site.name, site.layer_type)
        features.2 spatial
        features.5 spatial
        features.8 spatial
        head.3 dense
    """

    def __init__(
        self,
        *,
        channels: int = 32,
        num_classes: int = 10,
        spatial_dropout: float = 0.25,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        in_channels = 1
        for _ in range(3):
            layers += [
                nn.Conv1d(in_channels, channels, kernel_size=5, stride=2, padding=2),
                nn.ReLU(),
                nn.Dropout1d(spatial_dropout),
            ]
            in_channels = channels
        self.features = nn.Sequential(*layers)
        self.head = _head(channels * 5, 128, num_classes, dropout)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)))


class DigitsCNN(ClassifierModule):
    """A 2-D CNN for 8x8 digits ``(B, 1, 8, 8)`` (``DigitsDataModule(view="image")``).

    ``Conv -> ReLU -> Dropout2d``, then ``Conv -> ReLU -> MaxPool -> Dropout`` (a plain
    ``nn.Dropout`` on 4-D feature maps, which :func:`droptune.discover` classes as spatial
    because it follows a conv), then ``Conv -> ReLU -> MaxPool -> Dropout2d`` and a dense
    head with ``Dropout``. Feature maps: 8x8 -> 8x8 -> 4x4 -> 2x2.

    Args:
        channels: Channels of the first conv; the others have twice as many (default 32).
        num_classes: Output logits (default 10).
        spatial_dropout: Drop probability of the three conv-side dropouts, in [0, 1)
            (default 0.25).
        dropout: Drop probability of the dense head, in [0, 1) (default 0.5).
        lr: AdamW learning rate (default 1e-3).
        weight_decay: AdamW weight decay (default 0).
    """

    def __init__(
        self,
        *,
        channels: int = 32,
        num_classes: int = 10,
        spatial_dropout: float = 0.25,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        wide = 2 * channels
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(spatial_dropout),
            nn.Conv2d(channels, wide, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(spatial_dropout),
            nn.Conv2d(wide, wide, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout2d(spatial_dropout),
        )
        self.head = _head(wide * 2 * 2, 128, num_classes, dropout)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
