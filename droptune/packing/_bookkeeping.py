"""Storage and tracking writes of a population, kept off the training loop.

A population of K trials makes, per epoch, K MLflow ``log_batch`` calls, K ``trial.report``
writes and K pruning decisions. On SQLite each write costs milliseconds (mostly waiting on
the disk, with the GIL released) and each ``should_prune`` of a median pruner reads every
trial of the study. Done inline, that bookkeeping outlasts the vectorised epoch itself.

So writes go, in order, to one background thread (:class:`Bookkeeper`), and pruners that
only read the study (median, percentile) decide for every member from one snapshot of the
study per epoch (:func:`prune_decisions`); other pruners (Hyperband, successive halving,
which write as they decide) are asked through ``trial.should_prune`` as usual, once the
writes before them are done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

# Pruners whose decision only reads the study's trials: safe to run against a snapshot.
SNAPSHOT_PRUNERS: tuple[type[optuna.pruners.BasePruner], ...] = (
    optuna.pruners.MedianPruner,
    optuna.pruners.PercentilePruner,
)


class Bookkeeper:
    """Run calls one after another on a background thread, in the order they were submitted.

    An exception raised by a call is re-raised by the next :meth:`drain`, so that a failing
    store stops the worker as it would stop an unpacked one.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="droptune-bookkeeping")
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; returns its future."""
        future = self._executor.submit(fn, *args, **kwargs)
        with self._lock:
            self._pending.append(future)
        return future

    def drain(self) -> None:
        """Wait for every queued call; raise the first exception one of them raised."""
        with self._lock:
            pending, self._pending = self._pending, []
        error: BaseException | None = None
        for future in pending:
            exc = future.exception()
            if exc is not None and error is None:
                error = exc
        if error is not None:
            raise error

    def close(self) -> None:
        """Finish the queued calls (errors are logged, not raised) and stop the thread."""
        try:
            self.drain()
        except Exception:
            log.warning("a queued storage or tracking write failed", exc_info=True)
        self._executor.shutdown(wait=True)


def prune_decisions(
    study: optuna.Study,
    trials: Sequence[optuna.Trial],
    reported: Sequence[Mapping[int, float]],
) -> list[bool]:
    """Whether each running trial should be pruned now, given what it has reported.

    Args:
        study: The study.
        trials: The population's trials.
        reported: For each trial, every ``{step: value}`` it reported so far (its newest
            reports may still be queued for the storage).

    Returns:
        One decision per trial, as ``trial.should_prune()`` would give it.
    """
    pruner = study.pruner
    if isinstance(pruner, optuna.pruners.NopPruner):
        return [False] * len(trials)
    if type(pruner) not in SNAPSHOT_PRUNERS:
        return [trial.should_prune() for trial in trials]
    snapshot: Any = _Snapshot(study, study.get_trials(deepcopy=False))  # duck-types the Study it reads
    return [
        pruner.prune(
            snapshot,
            optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=dict(values)),
        )
        for values in reported
    ]


class _Snapshot:
    """The study as a read-only pruner sees it, with its trials read once."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._trials = trials

    def get_trials(
        self, deepcopy: bool = False, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
