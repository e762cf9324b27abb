"""A LightningDataModule over three in-memory splits, built lazily on first use."""

from __future__ import annotations

import abc

import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from droptune.data._common import check_int, make_loader


class SplitDataModule(pl.LightningDataModule, abc.ABC):
    """Base of the built-in data modules: fixed train/validation/test ``TensorDataset`` s.

    Subclasses implement :meth:`build`; it runs once, on :meth:`setup` or on first access
    to a split, so constructing a data module stays cheap.

    Args:
        batch_size: Rows per batch, >= 1.
        seed: Seeds the splits (in subclasses) and the order of training batches.
        num_workers: ``DataLoader`` worker processes, >= 0.

    Attributes:
        num_classes: Number of classes (10 unless a subclass says otherwise).
        input_shape: Shape of one input, without the batch dimension.
    """

    num_classes: int = 10
    input_shape: tuple[int, ...]  # shape of one input row, set by each subclass

    def __init__(self, *, batch_size: int, seed: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)
        self.num_workers = check_int("num_workers", num_workers, 0)
        self._splits: tuple[TensorDataset, TensorDataset, TensorDataset] | None = None

    @abc.abstractmethod
    def build(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        """Return the ``(train, validation, test)`` datasets; called once."""

    @override
    def setup(self, stage: str | None = None) -> None:
        self._built()

    @property
    def train_dataset(self) -> TensorDataset:
        """The training rows (built on first access)."""
        return self._built()[0]

    @property
    def val_dataset(self) -> TensorDataset:
        """The validation rows (built on first access)."""
        return self._built()[1]

    @property
    def test_dataset(self) -> TensorDataset:
        """The test rows (built on first access)."""
        return self._built()[2]

    @override
    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True)

    @override
    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False)

    @override
    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False)

    def _built(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        if self._splits is None:
            self._splits = self.build()
        return self._splits

    def _loader(self, dataset: TensorDataset, *, shuffle: bool) -> DataLoader:
        return make_loader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            shuffle=shuffle,
            seed=self.seed,
        )
