"""The scheduler: one loop, for every worker and every executor, that runs a study's trials.

It starts trials under the study's lock until the study holds ``n_trials`` finished ones
(across all workers and resumes), honours the deadline, stops after
:class:`FailureRule` (mostly failures lately), beats for its running trials and reaps
dead workers' trials (:mod:`droptune.tuning._heartbeat`). How trials train is the
executor's business, chosen by lookup in :data:`droptune.tuning.executors.EXECUTORS`.

An executor takes trials (:meth:`Executor.start`), trains (:meth:`Executor.step`) and hands
back those that ended with their :class:`~droptune.record.TrialResult`; the scheduler records
and tells them through the :class:`~droptune.tuning._recorder.TrialRecorder`.
droptune drives Optuna's ask/tell itself rather than ``study.optimize`` because it must count
finished trials across all workers, ask several trials at once for packed populations, and
close tracker runs on every way a trial can end.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from droptune._memory import hold_startup_objects, let_go_startup_objects
from droptune.config import StudySpec
from droptune.exceptions import StudyError
from droptune.stores._study_lock import study_lock
from droptune.tracking._health import check_tracking
from droptune.tuning._heartbeat import Heartbeat, heartbeat_interval, reap_dead_trials, worker_attrs
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning.executors._base import Executor

log = logging.getLogger(__name__)

# The stop rule judges a failure *rate*, not a streak: when NaN or out-of-memory haunt part of
# the rate range, the sampler is steered away from it (droptune.tuning._sampler) and the
# study should go on; five failures in a row ended such a study at 5 of 8 complete (issue 20).
MIN_FAILURES_TO_STOP = 5
MAX_FAILURE_SHARE = 0.5
FAILURE_WINDOW = 20
IDLE_POLL_S = 1.0  # how often a worker with nothing to start looks again

ProgressFn = Callable[[optuna.Study], None]


class FailureRule:
    """Stop a worker once at least :data:`MIN_FAILURES_TO_STOP` of its last
    :data:`FAILURE_WINDOW` ended trials failed and they are more than
    :data:`MAX_FAILURE_SHARE` of them: a broken model stops after 5 trials, as before, while
    a study with a failing region keeps going as long as most trials succeed.

    Example:
        >>> rule = FailureRule()
        >>> [rule.add(s, "nan") for s in ["failed", "complete", "failed", "complete"]][-1]
        False
        >>> any(rule.add("failed", "nan") for _ in range(5))
        True
    """

    def __init__(self) -> None:
        self.recent: collections.deque[bool] = collections.deque(maxlen=FAILURE_WINDOW)
        self.last_reason: str | None = None

    def add(self, state: str, reason: str | None) -> bool:
        """Record one ended trial; True when the worker should stop."""
        self.recent.append(state == "failed")
        if state == "failed":
            self.last_reason = reason
        failed = sum(self.recent)
        return failed >= MIN_FAILURES_TO_STOP and failed > MAX_FAILURE_SHARE * len(self.recent)

    def message(self) -> str:
        """Why the worker stopped, and what to do."""
        failed = sum(self.recent)
        return (
            f"{failed} of the last {len(self.recent)} trials failed; the last one because: {self.last_reason}. "
            "Fix the model or data (or narrow search.ranges if only high rates fail), then run the same "
            "command to resume."
        )


@dataclass
class Counts:
    """Trials of a study by state."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        """Trials that count toward ``n_trials``: complete or pruned (failed ones are redone)."""
        return self.complete + self.pruned


# An ended trial's Optuna state, as droptune.record names it (TrialResult.state, RUN_STATUS).
ENDED = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}


def count_trials(study: optuna.Study) -> Counts:
    """Count a study's trials by state."""
    counts = Counts()
    names = {**ENDED, TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
    for trial in study.get_trials(deepcopy=False):
        setattr(counts, names[trial.state], getattr(counts, names[trial.state]) + 1)
    return counts


def schedule(
    spec: StudySpec,
    study: optuna.Study,
    recorder: TrialRecorder,
    executor: Executor,
    *,
    progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> Counts:
    """Run trials of a prepared study with ``executor`` until it holds ``n_trials`` finished trials.

    A worker with nothing left to start waits while the last trials run elsewhere, so that it
    can redo one that fails or whose worker dies. Interrupted (Ctrl-C) or stopped by an error,
    the running trials end FAIL with the reason, their runs FAILED, then the error propagates
    (Ctrl-C as KeyboardInterrupt).

    Returns:
        The study's counts when this worker stopped.

    Raises:
        StudyError: When :class:`FailureRule` says most recent trials failed.
    """
    failures, waited = FailureRule(), False
    hold_startup_objects()  # the collection after each trial then walks only what the study made
    try:
        with Heartbeat(study._storage, heartbeat_interval(study)) as beat:
            while True:
                check_tracking(recorder.tracker)  # a lost tracking server stops the study if its file says so
                free = executor.capacity - len(executor.running())
                counts = _start(spec, study, recorder, executor, beat, free, deadline) if free > 0 else None
                if executor.running():
                    ended, stop = False, False
                    for trial, result in executor.step():  # every ended trial is recorded, then judged
                        recorder.books.submit(beat.discard, trial._trial_id)  # after its add: in order
                        recorder.close(trial, result)
                        ended = True
                        stop = failures.add(result.state, result.reason) or stop
                    if ended and progress is not None:  # once per step: a population ends many trials at once
                        recorder.books.submit(progress, study)
                    if stop:
                        recorder.drain()
                        raise StudyError(failures.message())
                    waited = False
                elif counts is not None and (counts.finished >= spec.search.n_trials or _past(deadline)):
                    recorder.drain()
                    return count_trials(study)
                else:
                    waited = _wait_for_others(counts, waited)
    except BaseException as err:
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
        from droptune._signals import interrupt_reason  # "terminated by SIGTERM ..." or Ctrl-C's reason

        # An error may name a shorter reason for the trials it cut short (TrackingLost, a full disk).
        from droptune.stores._damage import damaged_store_error  # Optuna's wording of SQLite's error misleads

        named = None if interrupted else damaged_store_error(err)
        reason = interrupt_reason(err) if interrupted else getattr(named or err, "trial_reason", f"{type(err).__name__}: {err}")
        running = executor.running()
        recorder.abort(running, reason)
        if interrupted:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores SIGINT after Ctrl-C
            from droptune._signals import TrialsStopped

            raise TrialsStopped(len(running)) from err
        raise
    finally:
        executor.close()
        recorder.shutdown()
        let_go_startup_objects()


def _start(
    spec: StudySpec,
    study: optuna.Study,
    recorder: TrialRecorder,
    executor: Executor,
    beat: Heartbeat,
    free: int,
    deadline: float | None,
) -> Counts:
    """Start up to ``free`` trials; return the study's counts as seen under the lock."""
    # Nothing trains meanwhile: let the pending outcomes land, so that the count is exact and
    # the sampler knows every result so far (the next asks should learn from the last trials).
    if not executor.running():
        recorder.drain()
    trials, counts = next_trials(study, spec, free, recorder, deadline)
    for trial in trials:
        recorder.books.submit(_mark, trial, beat)
    if trials:
        executor.start(trials)
    return counts


def _mark(trial: optuna.Trial, beat: Heartbeat) -> None:
    for key, value in worker_attrs().items():
        trial.set_user_attr(key, value)
    beat.add(trial._trial_id)


def next_trials(
    study: optuna.Study, spec: StudySpec, n: int, recorder: TrialRecorder | None = None, deadline: float | None = None
) -> tuple[list[optuna.Trial], Counts]:
    """Up to ``n`` new trials, or none when ``n_trials`` are finished or running, or past ``deadline``.

    Under the study's lock (see :mod:`droptune.stores._study_lock`): trials of dead workers are
    failed and requeued first, then the count and the asks happen as one step, so several
    workers never start more than ``n_trials`` trials between them. Failed trials do not
    count: they are redone.
    """
    with study_lock(study._storage, study.study_name):
        tracker, parent = (recorder.tracker, recorder.parent_run_id) if recorder else (None, None)
        reap_dead_trials(study, tracker=tracker, parent_run_id=parent)
        counts = count_trials(study)
        room = 0 if _past(deadline) else spec.search.n_trials - counts.finished - counts.running
        with warnings.catch_warnings():  # droptune beats itself: see droptune.tuning._heartbeat
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trials = [study.ask() for _ in range(max(0, min(n, room)))]
    return trials, counts


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait_for_others(counts: Counts | None, waited: bool) -> bool:
    """Nothing to start while other workers run the last trials: wait, in case one dies or fails."""
    if not waited and counts is not None:
        log.info("%d trials running in other workers: waiting for them to finish", counts.running)
    time.sleep(IDLE_POLL_S)
    return True
