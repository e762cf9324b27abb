"""Heartbeats of running trials, and the clean-up of trials whose worker died.

Optuna's ``study.optimize`` beats for its trials and fails stale ones; droptune drives
ask/tell itself, so it does both here with Optuna's own storage calls. A trial whose worker
died is failed with the reason recorded, its child run is closed FAILED, and it is
retried once with the same parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``:
a WAITING copy of the trial that the next ``study.ask()`` picks up).

A worker is known dead at once when it ran on this machine (its process is gone), and after
the heartbeat grace period (4 heartbeat intervals) wherever it ran.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import warnings
from types import TracebackType
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState
from typing_extensions import Self

from droptune.record import PROCESS_ATTR, REASON_ATTR, WORKER_ATTR

if TYPE_CHECKING:
    from droptune.tracking import Tracker

log = logging.getLogger(__name__)

# Attributes of a dead trial that its retry must not inherit.
NOT_INHERITED = (WORKER_ATTR, PROCESS_ATTR, REASON_ATTR)


def worker_id() -> str:
    """This process as ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_key() -> str:
    """Identify this process beyond its number: its PID namespace and start time (Linux).

    Two containers can share a host name, and PIDs are reused; a trial is judged by the
    liveness of the process that started it only where this key says it is the same one.
    Empty where ``/proc`` is not available.
    """
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{namespace}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str | None:
    """Start time of process ``pid`` (field 22 of proc(5) stat), None if it is gone or a zombie."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return None if fields[0] == "Z" else fields[19]


def worker_attrs() -> dict[str, str]:
    """The user attributes that say which process runs a trial (read back by :func:`is_dead_local`)."""
    return {WORKER_ATTR: worker_id(), PROCESS_ATTR: process_key()}


class Heartbeat:
    """Beat for a changing set of running trials from one daemon thread.

    An unpacked worker beats for its one trial; a packed population of hundreds of trials
    shares one thread. A trial's first beat is recorded before :meth:`add` returns, so a
    running trial always has a heartbeat. Does nothing when ``interval`` is None (the
    storage has no heartbeats).

    Args:
        storage: The study's storage.
        interval: Seconds between beats.

    Example:
        >>> with Heartbeat(optuna.storages.InMemoryStorage(), None) as beat:
        ...     beat.add(0)  # no heartbeats on this storage: nothing to do
    """

    def __init__(self, storage: optuna.storages.BaseStorage, interval: int | None) -> None:
        self.storage = storage
        self.interval = interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, trial_id: int) -> None:
        """Start beating for ``trial_id`` (``trial._trial_id``)."""
        if not self.interval:
            return
        self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        with self._lock:
            self._ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        """Stop beating for ``trial_id``."""
        with self._lock:
            self._ids.discard(trial_id)

    def __enter__(self) -> Self:
        if self.interval:
            self._thread = threading.Thread(target=self._beat, name="droptune-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                ids = list(self._ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
                except Exception:  # a busy database: the next beat will do, the grace period is 4 beats
                    log.debug("heartbeat of trial %d failed", trial_id, exc_info=True)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """The heartbeat interval of the study's storage, or None when it has none."""
    getter = getattr(study._storage, "get_heartbeat_interval", None)
    return getter() if getter is not None else None


def is_dead_local(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was started by a process of this machine that no longer exists."""
    host, _, pid_text = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
    recorded = trial.user_attrs.get(PROCESS_ATTR)
    if host != socket.gethostname() or not pid_text.isdigit() or recorded is None:
        return False  # another machine, or a trial that did not say: the heartbeat decides
    namespace, _, started = recorded.rpartition(":")
    if namespace != process_key().rpartition(":")[0]:
        return False  # another PID namespace (container) with the same host name
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    if not namespace:  # no /proc: ask the kernel whether the PID exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    try:
        return _start_time(pid) != started
    except FileNotFoundError:
        return True
    except OSError:  # exists, but unreadable: another user's process
        return False


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Running trials whose heartbeat is older than the grace period (RDB storages only)."""
    storage = study._storage
    if not heartbeat_interval(study):
        return []
    # Optuna's fail_stale_trials fails them before any reason can be recorded; ask the
    # storage which ones are stale instead (the same query fail_stale_trials runs).
    return list(storage._get_stale_trial_ids(study._study_id))  # type: ignore[attr-defined]


def reap_dead_trials(
    study: optuna.Study, *, tracker: Tracker | None = None, parent_run_id: str | None = None
) -> list[int]:
    """Fail the running trials whose worker died, retry each once, close their tracker runs.

    Returns:
        The numbers of the trials failed here.
    """
    stale = set(stale_trial_ids(study))
    reaped = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial._trial_id in stale:
            reason = f"worker {trial.user_attrs.get(WORKER_ATTR, '?')} stopped beating (heartbeat lost)"
        elif is_dead_local(trial):
            reason = f"worker {trial.user_attrs.get(WORKER_ATTR)} died (its process is gone)"
        else:
            continue
        if _fail(study, trial, reason):
            reaped.append(trial.number)
            log.warning("trial %d failed: %s; retrying it once with the same rates", trial.number, reason)
            _retry(study, trial)
            if tracker is not None and parent_run_id is not None:
                tracker.close_trial_run(parent_run_id, trial.number, reason)
    return reaped


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, reason)
        return storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:  # finished (or reaped) meanwhile
        return False


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    callback = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if callback is None:
        with warnings.catch_warnings():  # "experimental" in Optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
    failed = copy.deepcopy(study._storage.get_trial(trial._trial_id))
    failed.user_attrs = {k: v for k, v in failed.user_attrs.items() if k not in NOT_INHERITED}
    callback(study, failed)
