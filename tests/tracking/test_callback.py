"""TrackingCallback: a tracker lost mid-epoch (the health check) stops the fit at the next batch's end."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest

from droptune.callbacks import GapCallback
from droptune.testing import TinyDataModule, TinyModule
from droptune.tracking import NullTracker
from droptune.tracking._callback import TrackingCallback
from droptune.tracking._health import GuardedTracker, TrackingLost


class LoseAt(pl.Callback):
    """Loses the tracker (as its health check would) when training reaches batch ``at`` of epoch 0."""

    def __init__(self, tracker: GuardedTracker, at: int) -> None:
        self.tracker, self.at, self.batches = tracker, at, 0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.batches += 1
        if batch_idx == self.at:
            self.tracker._lose("no answer to 2 checks in a row, /health: [Errno 111] Connection refused", None)


def test_a_tracker_lost_mid_epoch_stops_the_fit_at_the_next_batch() -> None:
    tracker = GuardedTracker(NullTracker(), tracking_uri="http://127.0.0.1:9", storage="s.db", policy="stop")
    run = tracker.start_trial(tracker.study_run(), 0, {})
    gap = GapCallback(metrics=("val_loss",), seed=0, subset=16)
    lose = LoseAt(tracker, at=1)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", callbacks=[gap, lose, TrackingCallback(tracker, run, gap)],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    data = TinyDataModule(n_train=64, batch_size=8)  # 8 batches an epoch
    with pytest.raises(TrackingLost, match="stopped answering at trial 0"):
        trainer.fit(TinyModule(), datamodule=data)
    assert lose.batches == 2  # stopped after the batch it was lost in, not at the epoch's end


def test_a_healthy_tracker_lets_every_batch_run() -> None:
    tracker = GuardedTracker(NullTracker(), tracking_uri="http://127.0.0.1:9", storage="s.db", policy="stop")
    run = tracker.start_trial(tracker.study_run(), 0, {})
    gap = GapCallback(metrics=("val_loss",), seed=0, subset=16)
    lose = LoseAt(tracker, at=-1)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", callbacks=[gap, lose, TrackingCallback(tracker, run, gap)],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(TinyModule(), datamodule=TinyDataModule(n_train=64, batch_size=8))
    assert lose.batches == 16
