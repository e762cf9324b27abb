"""PruningCallback: report the objective metric to an Optuna trial each epoch, stop when pruned.

optuna-integration's Lightning callback reads private Lightning attributes, so droptune
keeps its own. It does not raise inside Lightning: it asks the Trainer to stop, and the
objective raises ``optuna.TrialPruned`` once ``fit`` has returned cleanly.
"""

from __future__ import annotations

import lightning.pytorch as pl
import optuna
from typing_extensions import override

from droptune.callbacks._gap import GapCallback


class PruningCallback(pl.Callback):
    """Report ``metric`` of each epoch's :class:`GapCallback` record to ``trial``.

    Args:
        trial: The running trial.
        gap: The trial's GapCallback (listed before this one).
        metric: Name of the objective metric in the epoch records.

    Attributes:
        pruned_at: The epoch at which the pruner stopped the trial, or None.
    """

    def __init__(self, trial: optuna.Trial, gap: GapCallback, metric: str) -> None:
        self.trial = trial
        self.gap = gap
        self.metric = metric
        self.pruned_at: int | None = None

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        record = self.gap.last_record(trainer)
        if record is None or self.metric not in record or self.gap.non_finite:
            return
        self.trial.report(record[self.metric], step=trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True
