"""TrackingCallback: log each epoch's record to the trial's MLflow run, in one batch."""

from __future__ import annotations

import lightning.pytorch as pl
from typing_extensions import override

from droptune.callbacks import GapCallback
from droptune.tracking._mlflow import MlflowTracker


class TrackingCallback(pl.Callback):
    """Send :class:`GapCallback`'s record of each epoch to MLflow with step = epoch.

    Args:
        tracker: The study's tracker.
        run_id: The trial's child run.
        gap: The trial's GapCallback (listed before this one).
    """

    def __init__(self, tracker: MlflowTracker, run_id: str, gap: GapCallback) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.gap = gap

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = self.gap.last_record(trainer)
        if record is not None:
            self.tracker.log_epoch(self.run_id, trainer.current_epoch, record)
