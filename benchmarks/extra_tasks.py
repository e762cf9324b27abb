"""Benchmark-only tasks of kinds droptune was not tuned on (issue 20), all offline.

- ``diabetes-mlp``: small-data tabular regression (scikit-learn's bundled diabetes set,
  200 training rows), mean squared error on standardised targets;
- ``noisy-digits-mlp``: digits with 40 % of the training and validation labels replaced by
  random ones (the test labels are clean: the score is what the model really learnt);
- ``mnist1d-small-mlp``: a small MLP on plenty of data, where dropout should not help;
- ``digits-wide-mlp``: a model far larger than its 150 training rows warrant;
- ``digits-rnn``: a sequence model (the built-in LSTM reading digits row by row).

The data modules reuse droptune's built-in splits; the regressor is a plain LightningModule
that a user could have written, with ``nn.Dropout`` modules droptune discovers unmodified.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from sklearn.datasets import load_diabetes
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from droptune.data import DigitsDataModule
from droptune.data._base import SplitDataModule

DIABETES_SPLIT = (200, 100)  # training and validation rows; the other 142 are the test split


class DiabetesDataModule(SplitDataModule):
    """scikit-learn's diabetes regression set, features and target standardised on the training rows."""

    num_classes = 0  # a regression: no chance level to check
    input_shape = (10,)

    def __init__(self, *, batch_size: int = 32, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)

    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        x, y = load_diabetes(return_X_y=True)
        order = np.random.default_rng(self.seed).permutation(len(x))
        n_train, n_val = DIABETES_SPLIT
        parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
        mu, sd = x[parts[0]].mean(0), x[parts[0]].std(0)
        y_mu, y_sd = y[parts[0]].mean(), y[parts[0]].std()

        def split(rows: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.tensor((x[rows] - mu) / sd, dtype=torch.float32),
                                 torch.tensor((y[rows] - y_mu) / y_sd, dtype=torch.float32))

        return split(parts[0]), split(parts[1]), split(parts[2])


class RegressorMLP(pl.LightningModule):
    """Input dropout, then ``Linear -> ReLU -> Dropout`` blocks, then one output; MSE loss."""

    def __init__(self, *, in_features: int = 10, hidden: Sequence[int] = (256, 256), input_dropout: float = 0.1,
                 dropout: float = 0.5, lr: float = 1e-3) -> None:
        super().__init__()
        self.lr = lr
        self.input_dropout = nn.Dropout(input_dropout)
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.hidden = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)

    @staticmethod
    def loss_fn(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction.reshape(target.shape), target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.input_dropout(x))).squeeze(-1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", self.loss_fn(self(batch[0]), batch[1]), on_step=False, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


NOISE = 0.4


class NoisyDigitsDataModule(DigitsDataModule):
    """Digits with :data:`NOISE` of the training and validation labels replaced by random classes."""

    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        train, val, test = super().build()
        rng = torch.Generator().manual_seed(self.seed + 1)

        def noisy(split: TensorDataset) -> TensorDataset:
            x, y = split.tensors
            flip = torch.rand(len(y), generator=rng) < NOISE
            y = torch.where(flip, torch.randint(0, 10, y.shape, generator=rng), y)
            return TensorDataset(x, y)

        return noisy(train), noisy(val), test
