"""GapCallback: per-epoch losses with dropout off, and the overfitting gap between them.

The loss a module logs while training is inflated by dropout itself, so it says little
about overfitting. At the end of each validation, this callback runs the module's own
``validation_step`` (eval mode, no grad) over a fixed subset of the training data (as large
as the validation set unless ``trainer.gap_subset`` says otherwise: see
:func:`gap_subset_size`), and captures the ``val_loss`` it logs: that is
``train_loss_eval``, and ``overfit_gap = val_loss - train_loss_eval``. Using the module's
own validation logic means a user's module needs nothing droptune-specific.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Subset
from typing_extensions import override

from droptune.exceptions import ConfigError

EpochRecord = dict[str, float]


def add_gap(record: EpochRecord) -> EpochRecord:
    """Add ``overfit_gap = val_loss - train_loss_eval`` to one epoch's record (both eval-mode losses).

    The one gap computation of droptune: the fit executor's :class:`GapCallback` and the packed
    executor both call it, so that the two report the same quantity under the same name.

    Example:
        >>> add_gap({"val_loss": 0.5, "train_loss_eval": 0.25})["overfit_gap"]
        0.25
    """
    record["overfit_gap"] = record["val_loss"] - record["train_loss_eval"]
    return record


def gap_subset_size(n_train: int, n_val: int, subset: int | float | None = None) -> int:
    """Rows of the training subset on which ``train_loss_eval`` is measured.

    A smaller subset measures the same quantity (the eval-mode loss on training rows, an
    unbiased estimate of it over the whole training set) with more noise, for less time:
    on a model whose validation set is large, this pass costs as much as validation.

    Args:
        n_train: Rows of the training set.
        n_val: Rows of the validation set (0 when unknown: the training set's size is used).
        subset: ``None`` (default): as many rows as the validation set; an int >= 1: that
            many rows; a float in (0, 1]: that fraction of the validation set's rows.

    Returns:
        The number of rows, in ``[1, n_train]`` (0 for an empty training set).

    Example:
        >>> gap_subset_size(50_000, 10_000), gap_subset_size(50_000, 10_000, 0.1), gap_subset_size(50_000, 10_000, 512)
        (10000, 1000, 512)
    """
    base = n_val or n_train
    if subset is None:
        rows = base
    elif isinstance(subset, int):
        rows = subset
    else:
        rows = math.ceil(subset * base)
    return min(n_train, max(rows, 1))


class GapCallback(pl.Callback):
    """Measure ``train_loss``, ``train_loss_eval``, ``val_loss`` and ``overfit_gap`` each epoch.

    Args:
        metrics: Extra validation metrics to record from ``trainer.callback_metrics``
            (``val_acc`` and the objective metric, say) when the module logs them.
        seed: Seed of the fixed training subset.
        subset: Its size (``trainer.gap_subset``): see :func:`gap_subset_size`. Default:
            as large as the validation set.

    Place it before the callbacks that read its records (pruning, tracking): Lightning
    calls callbacks in list order.

    Attributes:
        history: One record per epoch, ``{"epoch": e, "train_loss": ..., ...}``.
        non_finite: Set to a reason when a loss became NaN or infinite (training stops).
    """

    def __init__(
        self,
        *,
        metrics: tuple[str, ...] = ("val_acc",),
        seed: int = 0,
        subset: int | float | None = None,
    ) -> None:
        self.metrics = metrics
        self.seed = seed
        self.subset = subset
        self.history: list[EpochRecord] = []
        self.non_finite: str | None = None
        self._subset: DataLoader | None = None
        self._train_losses: list[torch.Tensor] = []
        self._pending: EpochRecord | None = None

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._subset = None  # built lazily: the dataloaders exist once the fit loop set them up

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._train_losses.append(loss.detach())

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if "val_loss" not in trainer.callback_metrics:
            raise ConfigError(
                f"{type(pl_module).__name__}.validation_step must log 'val_loss' "
                "(self.log('val_loss', loss)): droptune reads the validation loss under that name."
            )
        record = {"val_loss": float(trainer.callback_metrics["val_loss"])}
        for name in self.metrics:
            if name in trainer.callback_metrics and name not in record:
                record[name] = float(trainer.callback_metrics[name])
        record["train_loss_eval"] = self._eval_loss_on_train(trainer, pl_module)
        self._pending = add_gap(record)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:  # no validation ran this epoch (check_val_every_n_epoch > 1)
            self._train_losses.clear()
            return
        record = {"epoch": float(trainer.current_epoch)}
        if self._train_losses:
            record["train_loss"] = float(torch.stack(self._train_losses).float().mean())
        record.update(self._pending)
        self._train_losses.clear()
        self._pending = None
        bad = [k for k, v in record.items() if not math.isfinite(v)]
        if bad:
            self.non_finite = f"non-finite {', '.join(bad)} at epoch {trainer.current_epoch}"
            trainer.should_stop = True
        self.history.append(record)

    def last_record(self, trainer: pl.Trainer) -> EpochRecord | None:
        """The record of the epoch that just ended, or None if it had no validation."""
        if self.history and int(self.history[-1]["epoch"]) == trainer.current_epoch:
            return self.history[-1]
        return None

    def _eval_loss_on_train(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        loader = self._subset or self._make_subset(trainer)
        captured: list[tuple[torch.Tensor, int]] = []

        def capture(name: str, value: Any, *args: Any, batch_size: int | None = None, **kwargs: Any) -> None:
            if name == "val_loss":
                captured.append((torch.as_tensor(value).detach().float(), batch_size or current_size[0]))

        current_size = [1]
        was_training = pl_module.training
        pl_module.eval()
        pl_module.log = capture  # type: ignore[method-assign]
        try:
            with torch.no_grad(), trainer.precision_plugin.val_step_context():
                for index, batch in enumerate(loader):
                    batch = trainer.strategy.batch_to_device(batch)
                    current_size[0] = _batch_size(batch)
                    pl_module.validation_step(batch, index)
        finally:
            del pl_module.log  # back to the class's method
            pl_module.train(was_training)
        if not captured:
            return math.nan
        total = sum(size for _, size in captured)
        return float(sum(value.cpu() * size for value, size in captured) / total)

    def _make_subset(self, trainer: pl.Trainer) -> DataLoader:
        train, val = trainer.train_dataloader, trainer.val_dataloaders
        if train is None or val is None:  # called from on_validation_end of a fit: both exist
            raise RuntimeError("GapCallback needs the fit's training and validation dataloaders.")
        val = val[0] if isinstance(val, (list, tuple)) else val
        n_val = len(val.dataset) if hasattr(val.dataset, "__len__") else 0
        dataset = train.dataset
        n = gap_subset_size(len(dataset), n_val, self.subset)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(self.seed))
        self._subset = DataLoader(
            Subset(dataset, order[:n].tolist()),
            batch_size=val.batch_size or train.batch_size or 64,
            shuffle=False,
            collate_fn=train.collate_fn,
        )
        return self._subset


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0])
    if isinstance(batch, dict) and batch:
        return _batch_size(next(iter(batch.values())))
    return 1
