"""A tiny model and data set for tests that must train end to end in about a second."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset
from typing_extensions import override

from droptune.data._base import SplitDataModule
from droptune.data._common import check_int, tensor_dataset
from droptune.exceptions import ConfigError
from droptune.models._base import ClassifierModule


class TinyModule(ClassifierModule):
    """``Dropout(input_p) -> Linear -> ReLU -> Dropout(p) -> Linear``: two dropout sites.

    Same logging contract as the built-in models (``train_loss``, ``val_loss``,
    ``val_acc``, ``test_loss``, ``test_acc``); trained with Adam (AdamW, no decay).

    Args:
        in_features: Input features (default 8).
        hidden: Hidden units (default 16).
        num_classes: Output logits (default 3).
        p: Drop probability of the hidden dropout ``dropout``, in [0, 1) (default 0.3).
        lr: Learning rate (default 0.05).
        input_p: Drop probability of the input dropout ``input_dropout`` (default 0.1).
        weight_decay: AdamW weight decay (default 0).

    Example:
        >>> from droptune import discover
        >>> [(s.name, s.layer_type, s.rate) for s in discover(TinyModule())]
        [('input_dropout', 'input', 0.1), ('dropout', 'dense', 0.3)]
    """

    def __init__(
        self,
        *,
        in_features: int = 8,
        hidden: int = 16,
        num_classes: int = 3,
        p: float = 0.3,
        lr: float = 0.05,
        input_p: float = 0.1,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.input_dropout = nn.Dropout(input_p)
        self.fc1 = nn.Linear(in_features, hidden)
        self.dropout = nn.Dropout(p)
        self.fc2 = nn.Linear(hidden, num_classes)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(torch.relu(self.fc1(self.input_dropout(x)))))


class TinyDataModule(SplitDataModule):
    """A seeded ``make_classification`` problem split into train, validation and test.

    Args:
        n_train: Training rows (default 64).
        n_val: Validation rows (default 32).
        batch_size: Rows per batch (default 16).
        seed: Seeds the data and the order of training batches (default 0).
        in_features: Features per row, all informative (default 8).
        num_classes: Classes, at most ``2 ** in_features`` (default 3).
        n_test: Test rows (default 32).
        num_workers: ``DataLoader`` worker processes (default 0).

    Raises:
        ConfigError: If a size is out of range.

    Example:
        >>> data = TinyDataModule()
        >>> x, y = next(iter(data.train_dataloader()))
        >>> tuple(x.shape), len(data.val_dataset), data.num_classes
        ((16, 8), 32, 3)
    """

    def __init__(
        self,
        *,
        n_train: int = 64,
        n_val: int = 32,
        batch_size: int = 16,
        seed: int = 0,
        in_features: int = 8,
        num_classes: int = 3,
        n_test: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 1)
        self.n_test = check_int("n_test", n_test, 1)
        self.in_features = check_int("in_features", in_features, 1)
        self.num_classes = check_int("num_classes", num_classes, 2)
        if num_classes > 2**in_features:
            raise ConfigError(
                f"num_classes must be at most 2 ** in_features = {2**in_features}; got {num_classes}."
            )
        self.input_shape: tuple[int, ...] = (in_features,)

    @override
    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        from sklearn.datasets import make_classification

        x, y = make_classification(
            n_samples=self.n_train + self.n_val + self.n_test,
            n_features=self.in_features,
            n_informative=self.in_features,
            n_redundant=0,
            n_classes=self.num_classes,
            n_clusters_per_class=1,
            random_state=self.seed,
        )
        bounds = np.cumsum([self.n_train, self.n_val])
        parts = zip(np.split(x, bounds), np.split(y, bounds))
        train, val, test = (tensor_dataset(xs, ys) for xs, ys in parts)
        return train, val, test
