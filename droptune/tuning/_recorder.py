"""Write a trial, as :mod:`droptune.record` defines it, to the study and to the tracker.

Both executors (a Lightning fit per trial, a packed population) record their trials through
one :class:`TrialRecorder`: the user attributes and the child run when a trial starts, each
epoch's metrics and report, then the outcome (attributes, constraint, run summary, Optuna
``tell``). Writes go through a :class:`~droptune.tuning._bookkeeper.Bookkeeper`, in order, off the
training loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from droptune.record import (
    GAP_CONSTRAINT,
    TrialResult,
    finish_attrs,
    gap_constraint,
    run_params,
    run_state,
    run_summary,
    start_attrs,
)
from droptune.stores._journal import write_batch
from droptune.tracking._health import hurry
from droptune.tuning._bookkeeper import Bookkeeper

if TYPE_CHECKING:
    from droptune.config import ObjectiveSpec
    from droptune.sites import DropoutSite
    from droptune.tracking._base import Tracker

log = logging.getLogger(__name__)


class TrialRecorder:
    """Record the trials of one worker.

    Args:
        study: The study.
        tracker: Where child runs go.
        parent_run_id: The study's parent run.
        objective: The study's objective (metric, direction, ``max_gap``).
    """

    def __init__(
        self, *, study: optuna.Study, tracker: Tracker, parent_run_id: str, objective: ObjectiveSpec
    ) -> None:
        self.study = study
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.objective = objective
        self.books = Bookkeeper()
        self._runs: dict[int, Future] = {}
        self._unclosed: dict[int, optuna.Trial] = {}  # trials whose end could not be written

    def open(self, trial: optuna.Trial, rates: Mapping[str, float], layer_types: Mapping[str, str], **extra: Any) -> None:
        """Record a trial's rates and open its child run (``extra``: see :func:`droptune.record.start_attrs`)."""
        self.books.submit(_set_attrs, trial, start_attrs(rates, layer_types, **extra))
        params = run_params(rates, layer_types)
        self._runs[trial.number] = self.books.submit(
            self.tracker.start_trial, self.parent_run_id, trial.number, params
        )

    def open_sites(
        self, trial: optuna.Trial, rates: Mapping[str, float], sites: Sequence[DropoutSite],
        all_sites: Sequence[DropoutSite], **extra: Any,
    ) -> None:
        """:meth:`open` from the tuned ``sites`` and every site of the model (``all_sites``).

        Both executors open their trials here, so that every trial records the whole model's
        rates and types (sites left out by include/exclude keep their built rate) and an
        export is complete however the study ran.
        """
        self.open(
            trial, rates, {s.name: s.layer_type for s in sites},
            model_rates={s.name: rates.get(s.name, s.rate) for s in all_sites},
            model_types={s.name: s.layer_type for s in all_sites},
            **extra,
        )

    def run_id(self, trial: optuna.Trial) -> str:
        """The trial's child run id (waits for the run to be created)."""
        return self._runs[trial.number].result()

    def epoch(self, trial: optuna.Trial, epoch: int, record: Mapping[str, float], report: bool = True) -> None:
        """Log one epoch's record and, if ``report``, report its objective value to Optuna."""
        self.epochs([(trial, epoch, record, report)])

    def epochs(self, entries: Sequence[tuple[optuna.Trial, int, Mapping[str, float], bool]]) -> None:
        """:meth:`epoch` for several trials (a population's epoch): their reports written together."""
        if entries:
            self.books.submit(self._log_epochs, [(t, e, dict(r), report) for t, e, r, report in entries])

    def _log_epochs(self, entries: list[tuple[optuna.Trial, int, dict[str, float], bool]]) -> None:
        for trial, epoch, record, _ in entries:
            self.tracker.log_epoch(self._runs[trial.number].result(), epoch, record)
        with write_batch(entries[0][0].storage):  # one append for the population's reports
            for trial, epoch, record, report in entries:
                if report:
                    _optuna_write(trial.report, record[self.objective.metric], step=epoch)

    def close(self, trial: optuna.Trial, result: TrialResult) -> None:
        """Record how a trial ended, close its run, tell Optuna (queued)."""
        self.books.submit(self._close, trial, result)

    def _close(self, trial: optuna.Trial, result: TrialResult) -> None:
        try:
            self._write_end(trial, result)
        except Exception:
            # A failed write (a full disk) must not leave the trial RUNNING while this process is
            # alive to end it: abort() fails it, if the store takes that write.
            self._unclosed[trial.number] = trial
            raise
        self._unclosed.pop(trial.number, None)

    def _write_end(self, trial: optuna.Trial, result: TrialResult) -> None:
        metric, direction = self.objective.metric, self.objective.direction
        with write_batch(trial.storage):
            _set_attrs(trial, finish_attrs(result, metric, direction))
            constraint = gap_constraint(result, metric, direction, self.objective.max_gap)
            if constraint is not None:
                _optuna_write(trial.set_constraint, GAP_CONSTRAINT, constraint)
        run = self._runs.get(trial.number)
        # A trial stopped before its run was opened (Ctrl-C or SIGTERM while its model was being
        # built) still gets a run, closed with the reason: every trial is tracked.
        run_id = run.result() if run is not None else self.tracker.start_trial(self.parent_run_id, trial.number, {})
        summary = run_summary(result, metric, direction)
        self.tracker.end_trial(run_id, result.state, summary=summary, reason=result.reason)
        tell(self.study, trial, result)
        self._runs.pop(trial.number, None)  # kept until here: a retried end closes the same run

    def abort(self, trials: list[optuna.Trial], reason: str) -> None:
        """Fail ``trials`` (still running) with ``reason`` now: after Ctrl-C or a study-level error."""
        hurry(self.tracker)  # stopping: a hung tracking server must not hold Ctrl-C
        try:
            self.books.drain()
        except BaseException:  # keep closing; the original error propagates
            log.debug("a queued write failed while stopping", exc_info=True)
        running = {t.number for t in trials}
        for trial in [*(t for t in self._unclosed.values() if t.number not in running), *trials]:
            try:
                self._close(trial, TrialResult(state="failed", reason=reason))
            except Exception:  # keep closing the others
                log.debug("could not close trial %d", trial.number, exc_info=True)

    def drain(self) -> None:
        """Wait for the queued writes; raise the first error one of them raised."""
        self.books.drain()

    def shutdown(self) -> None:
        """Finish the queued writes, flush the tracker, stop the writer thread."""
        self.books.close()
        try:
            self.tracker.flush()
        except Exception:
            log.warning("could not flush the tracker", exc_info=True)


def tell(study: optuna.Study, trial: optuna.Trial, result: TrialResult) -> None:
    """Record a trial's outcome in the study (nothing if another worker failed it meanwhile)."""
    if result.state == "complete" and result.value is not None and math.isfinite(result.value):
        study.tell(trial, result.value, skip_if_finished=True)
    elif result.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    else:
        # A trial stopped by Ctrl-C or SIGTERM: the run's final line says so, once for all of them.
        level = logging.DEBUG if run_state(result.state, result.reason) == "interrupted" else logging.WARNING
        log.log(level, "trial %d failed: %s", trial.number, (result.reason or "").splitlines()[0] if result.reason else "")
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def _set_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    with write_batch(trial.storage):  # one append for all of them, where the storage batches
        for key, value in attrs.items():
            if not _optuna_write(trial.set_user_attr, key, value):
                return


def _optuna_write(write: Any, *args: Any, **kwargs: Any) -> bool:
    """Write to a running trial; False if another worker has failed it (its heartbeat was lost)."""
    try:
        write(*args, **kwargs)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.debug("trial already finished (heartbeat lost): write dropped")
        return False
    return True
