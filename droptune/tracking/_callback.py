"""TrackingCallback: hand each epoch's record to the trial's tracker run."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from typing_extensions import override

from droptune.callbacks import GapCallback
from droptune.tracking._base import Tracker
from droptune.tracking._health import check_tracking, guard_of


class TrackingCallback(pl.Callback):
    """Send :class:`GapCallback`'s record of each epoch to the tracker with step = epoch.

    A tracking server lost mid-epoch (seen by the tracker's health check) stops the trial at
    the next training or validation batch's end when the study file says ``tracking_failure: stop``.

    Args:
        tracker: The study's tracker (it may buffer the metrics).
        run_id: The trial's child run.
        gap: The trial's GapCallback (listed before this one).
    """

    def __init__(self, tracker: Tracker, run_id: str, gap: GapCallback) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.gap = gap
        # Found once: the check per batch is then one attribute read (cheaper than a clock read
        # to rate-limit it), so an epoch of any length is cut short within one batch.
        self._guard = guard_of(tracker)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._guard is not None:
            self._guard.check()

    @override
    def on_validation_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._guard is not None:
            self._guard.check()

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = self.gap.last_record(trainer)
        if record is not None:
            self.tracker.log_epoch(self.run_id, trainer.current_epoch, record)
        check_tracking(self.tracker)  # a lost server stops the trial here, not after its last epoch
