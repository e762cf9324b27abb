"""A study's data as tensors on the device, batched the way its training loader batches."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from droptune.callbacks import gap_subset_size
from droptune.exceptions import PackingError

# Keep the training set on the device when it takes at most this share of free memory.
DEVICE_SHARE = 0.25


@dataclass
class PackedData:
    """Training, validation and train-evaluation tensors shared by a whole population.

    Every member sees the same batches. The order of training batches comes from the
    datamodule's own training loader (its sampler and generator), so a member that starts
    with the population sees exactly the batches an unpacked trial would.

    Attributes:
        x_train, y_train: The training set (on ``store`` device).
        x_val, y_val: The validation set (on the training device).
        x_fit, y_fit: The fixed training subset (as large as the validation set unless
            ``trainer.gap_subset`` says otherwise), on which
            ``train_loss_eval`` is measured (the rows :class:`~droptune.callbacks.GapCallback`
            picks for the same seed).
        eval_batch_size: Rows per evaluation batch (the validation loader's).
        device: Where the population trains.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_fit: torch.Tensor
    y_fit: torch.Tensor
    eval_batch_size: int
    device: torch.device
    indices: DataLoader | None = None
    batch_size: int = 32
    drop_last: bool = False
    seed: int = 0
    _generator: torch.Generator | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_datamodule(
        cls,
        data: pl.LightningDataModule,
        *,
        device: torch.device,
        seed: int,
        gap_subset: int | float | None = None,
    ) -> PackedData:
        """Read a datamodule's train and validation sets into tensors.

        ``gap_subset`` sizes the fixed training subset (``x_fit``) as the unpacked gap
        callback does (:func:`~droptune.callbacks.gap_subset_size`), drawn in the same order.

        Raises:
            PackingError: If a batch is not an ``(inputs, targets)`` pair of tensors.
        """
        data.prepare_data()
        data.setup("fit")
        train = data.train_dataloader()
        val = data.val_dataloader()
        val = val[0] if isinstance(val, (list, tuple)) else val
        x_train, y_train = _tensors(train, "training")
        x_val, y_val = _tensors(val, "validation")
        n_fit = gap_subset_size(len(x_train), len(x_val), gap_subset)
        order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n_fit]
        store = device if _fits(device, x_train.nbytes + y_train.nbytes) else torch.device("cpu")
        map_style = not isinstance(train.dataset, IterableDataset) and train.batch_sampler is not None
        indices: DataLoader | None = None
        if map_style:  # a loader of row indices drawing its order as the training loader does
            rows: Any = range(len(x_train))
            indices = DataLoader(rows, batch_sampler=train.batch_sampler, generator=train.generator)
        return cls(
            x_train=x_train.to(store),
            y_train=y_train.to(store),
            x_val=x_val.to(device),
            y_val=y_val.to(device),
            x_fit=x_train[order].to(device),
            y_fit=y_train[order].to(device),
            eval_batch_size=val.batch_size or train.batch_size or 64,
            device=device,
            indices=indices,
            batch_size=train.batch_size or 32,
            drop_last=bool(train.drop_last),
            seed=seed,
        )

    def train_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of training batches, on the training device."""
        batches = list(self._index_batches())
        if not batches:
            return
        # One transfer of the epoch's indices, not one per batch.
        indices = torch.cat(batches).to(self.x_train.device).split([len(b) for b in batches])
        for index in indices:
            yield (
                self.x_train[index].to(self.device, non_blocking=True),
                self.y_train[index].to(self.device, non_blocking=True),
            )

    def _index_batches(self) -> Iterator[torch.Tensor]:
        if self.indices is not None:
            # Exactly len() batches, as Lightning takes them: exhausting the sampler would
            # draw one more permutation from its generator and shift every later epoch.
            yield from itertools.islice(self.indices, len(self.indices))
            return
        if self._generator is None:  # an iterable dataset: the population draws its own order
            self._generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(self.x_train), generator=self._generator)
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start : start + self.batch_size]


def _tensors(loader: DataLoader, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    dataset = loader.dataset
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        return dataset.tensors[0], dataset.tensors[1]
    if isinstance(dataset, IterableDataset):
        batches = loader
    else:  # a map-style dataset: read it in order, so that indices keep their meaning
        batches = DataLoader(
            dataset,
            batch_size=loader.batch_size or 256,
            shuffle=False,
            collate_fn=loader.collate_fn,
        )
    xs, ys = [], []
    for batch in batches:
        if not (
            isinstance(batch, (list, tuple))
            and len(batch) == 2
            and all(isinstance(t, torch.Tensor) for t in batch)
        ):
            raise PackingError(
                f"packed training needs {split} batches that are (inputs, targets) pairs of tensors; "
                f"got {type(batch).__name__}. Run it unpacked (search.pack: 1)."
            )
        xs.append(batch[0])
        ys.append(batch[1])
    if not xs:
        raise PackingError(f"the {split} loader yields no batch.")
    return torch.cat(xs), torch.cat(ys)


def _fits(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_SHARE * free
