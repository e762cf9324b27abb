"""Real models with every kind of dropout site, shared by the tests of droptune.sites.

Each case builds a fresh model, one example input, and the sites the model must have:
name -> layer type, in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from droptune.nn import DropPath, VariationalDropout


def drop_path(x: torch.Tensor, drop_prob: float = 0.0, training: bool = False) -> torch.Tensor:
    """timm's drop_path, written out here: the tests must not import timm."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    return x * random_tensor / keep_prob


class TimmDropPath(nn.Module):
    """A DropPath in the style of timm's (a float ``drop_prob``, no parameters)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.2),  # on the flattened input
            nn.Linear(64, 32),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(32, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Dropout2d(0.25),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Dropout(0.3),  # a plain Dropout on conv feature maps
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(8 * 4 * 4, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_drop = nn.Dropout(0.1)
        self.lstm = nn.LSTM(8, 16, num_layers=2, dropout=0.3, batch_first=True)
        self.drop = VariationalDropout(0.2)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.in_drop(x))
        return self.head(self.drop(out)[:, -1])


class SingleLayerRNNs(nn.Module):
    """A GRU and an RNN of one layer each: their dropout does nothing and is skipped."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.rnn = nn.RNN(16, 16, batch_first=True)
        self.drop = nn.Dropout(0.4)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        out, _ = self.rnn(out)
        return self.head(self.drop(out[:, -1]))


class TransformerNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.encoder(self.embed(x)).mean(1)))


class DecoderNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.1, batch_first=True)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        return self.layer(tgt, memory)


class Block(nn.Module):
    def __init__(self, dim: int, drop: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.drop_path = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.fc(self.norm(x)))


class ResidualNet(nn.Module):
    """Stochastic depth: two timm-style DropPath blocks and one of droptune's."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [Block(16, TimmDropPath(0.0)), Block(16, TimmDropPath(0.1)), Block(16, DropPath(0.2))]
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class MiscDropouts(nn.Module):
    """Dropout1d/3d, AlphaDropout and FeatureAlphaDropout; two inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(2, 4, 3, padding=1)
        self.drop1d = nn.Dropout1d(0.1)
        self.conv3d = nn.Conv3d(1, 2, 3, padding=1)
        self.drop3d = nn.Dropout3d(0.2)
        self.feature_alpha = nn.FeatureAlphaDropout(0.15)
        self.fc = nn.Linear(4 * 6 + 2 * 4 * 4 * 4, 8)
        self.alpha = nn.AlphaDropout(0.05)
        self.head = nn.Linear(8, 3)

    def forward(self, seq: torch.Tensor, vol: torch.Tensor) -> torch.Tensor:
        a = self.drop1d(self.conv1d(seq)).flatten(1)
        b = self.feature_alpha(self.drop3d(self.conv3d(vol))).flatten(1)
        return self.head(self.alpha(torch.selu(self.fc(torch.cat([a, b], 1)))))


@dataclass
class Case:
    build: Callable[[], nn.Module]
    example: Callable[[], Any]  # one input for model(...)
    sites: dict[str, str]  # name -> layer type, in discover order

    def call(self, model: nn.Module, example: Any) -> torch.Tensor:
        return model(*example) if isinstance(example, tuple) else model(example)


def _layer_sites(prefix: str, names: list[str]) -> dict[str, str]:
    # Attention weights are attention; the sub-layer outputs and the FFN activations, all
    # inside a residual branch, are hidden.
    return {f"{prefix}.{name}": "attention" if "attn" in name else "hidden" for name in names}


_ENCODER_LAYER = ["self_attn.dropout", "dropout", "dropout1", "dropout2"]
_DECODER_LAYER = [
    "self_attn.dropout",
    "multihead_attn.dropout",
    "dropout",
    "dropout1",
    "dropout2",
    "dropout3",
]

CASES: dict[str, Case] = {
    "mlp": Case(MLP, lambda: torch.randn(4, 8, 8), {"net.1": "input", "net.4": "dense"}),
    "cnn": Case(
        CNN,
        lambda: torch.randn(4, 1, 8, 8),
        {"features.3": "spatial", "features.6": "spatial", "head.1": "dense"},
    ),
    "lstm": Case(
        LSTMNet,
        lambda: torch.randn(4, 5, 8),
        {"in_drop": "input", "lstm.dropout": "recurrent", "drop": "recurrent"},
    ),
    "single_layer_rnns": Case(SingleLayerRNNs, lambda: torch.randn(4, 5, 8), {"drop": "dense"}),
    "transformer_encoder": Case(
        TransformerNet,
        lambda: torch.randn(4, 6, 4),
        {
            **_layer_sites("encoder.layers.0", _ENCODER_LAYER),
            **_layer_sites("encoder.layers.1", _ENCODER_LAYER),
            "drop": "dense",
        },
    ),
    "transformer_decoder_layer": Case(
        DecoderNet,
        lambda: (torch.randn(4, 5, 16), torch.randn(4, 7, 16)),
        _layer_sites("layer", _DECODER_LAYER),
    ),
    "drop_path": Case(
        ResidualNet,
        lambda: torch.randn(8, 16),
        {f"blocks.{i}.drop_path.drop_prob": "residual" for i in range(3)},
    ),
    "misc_dropouts": Case(
        MiscDropouts,
        lambda: (torch.randn(4, 2, 6), torch.randn(4, 1, 4, 4, 4)),
        {"drop1d": "spatial", "drop3d": "spatial", "feature_alpha": "spatial", "alpha": "dense"},
    ),
}


@pytest.fixture(params=list(CASES), ids=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    """Every real model, one at a time."""
    return CASES[request.param]


@pytest.fixture
def cases() -> dict[str, Case]:
    return CASES


@pytest.fixture
def timm_drop_path() -> type[nn.Module]:
    return TimmDropPath
