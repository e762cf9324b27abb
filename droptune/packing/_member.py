"""A trial while it trains as a member of a population: its epochs, stopping and outcome.

What the callbacks of an unpacked trial (gap, pruning, early stopping) decide from the epoch
records, decided here from the population's records instead; the trial is then recorded
exactly as an unpacked one is (:mod:`droptune.record`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna

from droptune.config import ObjectiveSpec, TrainerSpec
from droptune.record import TrialResult, outcome

EpochRecord = dict[str, float]


@dataclass
class Member:
    """One trial being trained in a population.

    Attributes:
        trial: The Optuna trial.
        history: One record per epoch, as :class:`~droptune.callbacks.GapCallback` keeps.
        reported: ``{epoch: objective value}`` reported to the trial.
        pruned_at: Epoch at which the pruner stopped the trial, or None.
        failed: Why the trial failed, or None.
        stopped: Early stopping or ``max_epochs`` ended it.
    """

    trial: optuna.Trial
    history: list[EpochRecord] = field(default_factory=list)
    reported: dict[int, float] = field(default_factory=dict)
    best: float | None = None
    wait: int = 0
    pruned_at: int | None = None
    failed: str | None = None
    stopped: bool = False

    @property
    def done(self) -> bool:
        """Whether the member leaves the population after this epoch."""
        return self.stopped or self.failed is not None or self.pruned_at is not None

    def observe(self, record: EpochRecord, objective: ObjectiveSpec, trainer: TrainerSpec) -> float | None:
        """Append one epoch's record; return the objective value to report, or None.

        A non-finite metric fails the member (None is returned). Early stopping follows
        Lightning's ``EarlyStopping`` (patience epochs without a strict improvement).
        """
        epoch = len(self.history)
        self.history.append(record)
        bad = [k for k, v in record.items() if not math.isfinite(v)]
        if bad:
            self.failed = f"non-finite {', '.join(bad)} at epoch {epoch}"
            return None
        value = record[objective.metric]
        self.reported[epoch] = value
        sign = 1.0 if objective.direction == "minimize" else -1.0
        if self.best is None or sign * value < sign * self.best:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        patience = trainer.early_stopping_patience
        if (patience and self.wait >= patience) or epoch + 1 >= trainer.max_epochs:
            self.stopped = True
        return value

    def reported_now(self) -> bool:
        """Whether the member reported a value for the epoch that just ended."""
        return self.failed is None and bool(self.reported) and max(self.reported) == len(self.history) - 1

    def outcome(self, objective: ObjectiveSpec) -> TrialResult:
        """How the trial ended, as an unpacked trial's executor returns it."""
        return outcome(
            self.history, objective.metric, objective.direction, failed=self.failed, pruned_at=self.pruned_at
        )
