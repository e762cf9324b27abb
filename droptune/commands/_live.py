"""Inside a running trial: which epoch it is at and its latest losses, for the progress display.

Both executors hand each epoch's record to the study's tracker (:meth:`Tracker.log_epoch
<droptune.tracking.Tracker.log_epoch>`): a Lightning fit from its tracking callback, a packed
population from its recorder (one record per member). So the CLI listens there: an
:class:`EpochTap` is a tracker that passes every call on to the real one and also tells a
listener of each epoch. Nothing in the engine knows about it.

:class:`LiveTrials` keeps the latest epoch of each running trial: the line shown under the
progress bar, and the fraction of a trial's epochs done, from which the ETA is estimated;
:class:`LiveBar` draws that line under the bar, and :class:`EtaColumn` the time left.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from rich.console import RenderableType
from rich.progress import Progress, ProgressColumn, Task
from rich.text import Text

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from droptune.tracking import Tracker

log = logging.getLogger(__name__)

#: Called with a trial's number, the epoch that ended (from 0) and its record (``val_loss``...).
EpochListener = Callable[[int, int, Mapping[str, float]], None]


class EpochTap:
    """A tracker that passes every call to ``tracker`` and tells ``listener`` of each logged epoch.

    The listener runs in the thread that logs the epoch (the training loop, or the recorder's
    writer thread for a packed population); an error in it is logged, never raised: a
    display must not fail a trial.

    Args:
        tracker: The study's tracker.
        listener: Told of each epoch; may be set (and reset to None) later.
    """

    def __init__(self, tracker: Tracker, listener: EpochListener | None = None) -> None:
        self.tracker = tracker
        self.listener = listener
        self.keeps_artifacts = tracker.keeps_artifacts
        self._numbers: dict[str, int] = {}  # run id -> trial number

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        run_id = self.tracker.start_trial(parent_run_id, number, params)
        self._numbers[run_id] = number
        return run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self.tracker.log_epoch(run_id, epoch, metrics)
        number, listener = self._numbers.get(run_id), self.listener
        if number is not None and listener is not None:
            try:
                listener(number, epoch, metrics)
            except Exception:
                log.debug("the progress display failed on an epoch of trial %s", number, exc_info=True)

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        self._numbers.pop(run_id, None)
        self.tracker.end_trial(run_id, state, summary=summary, reason=reason)

    def study_run(self, run_id: str | None = None) -> str:
        return self.tracker.study_run(run_id)

    def has_study_run(self, run_id: str) -> bool:
        return self.tracker.has_study_run(run_id)

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        self.tracker.close_trial_run(parent_run_id, number, reason)

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        return self.tracker.close_finished_runs(parent_run_id, states)

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(run_id, path, artifact_path)

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        self.tracker.log_study_summary(run_id, metrics)

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        self.tracker.end_study(run_id, status)

    def flush(self) -> None:
        self.tracker.flush()

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        return self.tracker.runs_url(host, port)

    def __getattr__(self, name: str) -> Any:  # anything a tracker has beyond the protocol
        return getattr(self.tracker, name)


class LiveTrials:
    """The latest epoch of each running trial (not thread-safe: its owner locks).

    Args:
        max_epochs: Epochs a trial trains at most (``trainer.max_epochs``); None if unknown.
        metric: The objective's name (which trial of a population is the best so far).
        maximize: Whether the objective is maximised.
    """

    def __init__(self, *, max_epochs: int | None = None, metric: str = "val_loss", maximize: bool = False) -> None:
        self.max_epochs, self.metric, self.maximize = max_epochs, metric, maximize
        self._latest: dict[int, tuple[int, dict[str, float]]] = {}  # trial -> (epoch from 0, record)

    def __len__(self) -> int:
        return len(self._latest)

    def record(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Trial ``number`` ended epoch ``epoch`` (from 0) with ``metrics``."""
        self._latest[number] = (epoch, dict(metrics))

    def drop(self, numbers: Iterable[int]) -> None:
        """Forget trials that have ended."""
        for number in numbers:
            self._latest.pop(number, None)

    def follow(self, running: Sequence[FrozenTrial]) -> bool:
        """Take the running trials' last reported epochs (from the study); True if any moved.

        Only the objective is reported to Optuna (no gap); trials no longer running are dropped.
        """
        before = {n: epoch for n, (epoch, _) in self._latest.items()}
        self.drop([n for n in before if n not in {t.number for t in running}])
        for trial in running:
            if trial.intermediate_values:
                step = max(trial.intermediate_values)
                if before.get(trial.number) != step:
                    self.record(trial.number, step, {self.metric: trial.intermediate_values[step]})
        return {n: epoch for n, (epoch, _) in self._latest.items()} != before

    def fraction(self) -> float:
        """Trials' worth of epochs done by the running trials (each at most 1; 0 if ``max_epochs`` is unknown)."""
        if not self.max_epochs:
            return 0.0
        return sum(min(1.0, (epoch + 1) / self.max_epochs) for epoch, _ in self._latest.values())

    def line(self) -> str:
        """``trial 3 · epoch 4/30 · val_loss 0.3121 · gap 0.0412`` ("" when no epoch has ended).

        Example:
            >>> live = LiveTrials(max_epochs=30)
            >>> live.record(3, 3, {"val_loss": 0.31214, "overfit_gap": 0.04118})
            >>> live.line()
            'trial 3 · epoch 4/30 · val_loss 0.3121 · gap 0.0412'
            >>> live.record(4, 1, {"val_loss": 0.2, "overfit_gap": 0.01})
            >>> live.line()
            '2 trials running · epochs 2–4/30 · best val_loss 0.2 (trial 4, gap 0.0100)'
        """
        if not self._latest:
            return ""
        if len(self._latest) == 1:
            ((number, (epoch, record)),) = self._latest.items()
            parts = [f"trial {number}", f"epoch {self._of(epoch)}", *_values(record, self.metric)]
            return " · ".join(parts)
        epochs = sorted(epoch for epoch, _ in self._latest.values())
        span = self._of(epochs[0]) if epochs[0] == epochs[-1] else f"{epochs[0] + 1}–{self._of(epochs[-1])}"
        parts = [f"{len(self._latest)} trials running", f"epoch{'s' if epochs[0] != epochs[-1] else ''} {span}"]
        scored = [(r[self.metric], n, r) for n, (_, r) in self._latest.items() if _finite(r.get(self.metric))]
        if scored:
            value, number, record = (max if self.maximize else min)(scored, key=lambda s: s[0])
            gap = record.get("overfit_gap")
            detail = f"trial {number}" + (f", gap {gap:.4f}" if _finite(gap) else "")
            parts.append(f"best {self.metric} {value:.4g} ({detail})")
        return " · ".join(parts)

    def _of(self, epoch: int) -> str:
        return f"{epoch + 1}/{self.max_epochs}" if self.max_epochs else str(epoch + 1)


def _values(record: Mapping[str, float], metric: str) -> list[str]:
    parts = [f"{name} {record[name]:.4g}" for name in dict.fromkeys(("val_loss", metric)) if _finite(record.get(name))]
    gap = record.get("overfit_gap")
    if _finite(gap):
        parts.append(f"gap {gap:.4f}")
    return parts


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value)


class LiveBar(Progress):
    """The progress bar, and under it the running trial's epoch line (:attr:`live_line`)."""

    live_line = ""

    def get_renderables(self) -> Iterator[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if self.live_line:
            yield Text(f"  {self.live_line}", no_wrap=True, overflow="ellipsis")


class EtaColumn(ProgressColumn):
    """``· ETA 2:31``, read at each refresh, so that it counts down between epochs."""

    def __init__(self, eta: Callable[[], str]) -> None:
        super().__init__()
        self._eta = eta

    def render(self, task: Task) -> Text:
        return Text(f"· ETA {self._eta()}")
