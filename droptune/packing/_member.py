"""A trial while it trains as a member of a population: its epochs, stopping and outcome.

What the callbacks of an unpacked trial (gap, pruning, early stopping) and its objective
decide from the epoch records, decided here from the population's records instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

import optuna

from droptune.config import ObjectiveSpec, TrainerSpec
from droptune.tuning._objective import CURVE_ATTR, TrialResult, best_record

EpochRecord = dict[str, float]


@dataclass
class Member:
    """One trial being trained in a population.

    Attributes:
        trial: The Optuna trial.
        run: Future of the MLflow run id (the run is created on the bookkeeping thread).
        history: One record per epoch, as :class:`~droptune.callbacks.GapCallback` keeps.
        reported: ``{epoch: objective value}`` reported to the trial.
        pruned_at: Epoch at which the pruner stopped the trial, or None.
        failed: Why the trial failed, or None.
        stopped: Early stopping or ``max_epochs`` ended it.
    """

    trial: optuna.Trial
    run: Future
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
        """How the trial ended, as an unpacked trial's objective returns it."""
        history = self.history
        if self.failed is not None:
            return TrialResult(state="failed", reason=self.failed, history=history)
        if not history:
            return TrialResult(state="failed", reason="no validation epoch ran", history=history)
        if self.pruned_at is not None:
            return TrialResult(state="pruned", reason=f"pruned at epoch {self.pruned_at}", history=history)
        best = best_record(history, objective.metric, objective.direction)
        return TrialResult(state="complete", value=best[objective.metric], history=history)

    def final_attrs(self, objective: ObjectiveSpec) -> dict[str, object]:
        """The user attributes an unpacked trial sets once it has trained (curve, best epoch...)."""
        keys = ("overfit_gap", "val_loss", "train_loss_eval")
        attrs: dict[str, object] = {CURVE_ATTR: {k: [r.get(k, math.nan) for r in self.history] for k in keys}}
        if self.history and self.failed is None:
            best = best_record(self.history, objective.metric, objective.direction)
            attrs.update(
                best_epoch=int(best["epoch"]), overfit_gap=best["overfit_gap"], epochs=len(self.history)
            )
        return attrs

    def constraint(self, objective: ObjectiveSpec) -> float | None:
        """The ``overfit_gap`` constraint value (``max_gap`` set), or None."""
        if objective.max_gap is None or not self.history or self.failed is not None:
            return None
        best = best_record(self.history, objective.metric, objective.direction)
        return best["overfit_gap"] - objective.max_gap


def run_params(rates: Mapping[str, float], layer_types: Mapping[str, str]) -> dict[str, object]:
    """The MLflow params of a trial's run: ``rate.<site>`` and ``type.<site>``."""
    params: dict[str, object] = {f"rate.{n}": round(r, 6) for n, r in rates.items()}
    params.update({f"type.{n}": t for n, t in layer_types.items()})
    return params


def run_summary(result: TrialResult, objective: ObjectiveSpec) -> dict[str, float]:
    """The summary metrics of a trial's run (its best epoch)."""
    metric, direction = objective.metric, objective.direction
    finite = [r for r in result.history if math.isfinite(r.get(metric, math.nan))]
    if not finite:
        return {}
    best = best_record(finite, metric, direction)
    return {
        f"best_{metric}": best[metric],
        "best_epoch": best["epoch"],
        "best_overfit_gap": best["overfit_gap"],
    }
