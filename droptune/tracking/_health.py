"""A remote MLflow tracking server that stops answering: noticed in bounded time, then handled
as the study file says (``tracking_failure: stop | continue``).

MLflow's own defaults retry an unreachable server for minutes (7 retries, exponential backoff,
a 120 s timeout per request), on whatever thread made the call: a study kept training for ~8
minutes after its server died, then died with a traceback, and Ctrl-C waited on the retries.
Two bounds fix that:

- MLflow's own settings, :func:`bound_mlflow_http` (``MLFLOW_HTTP_REQUEST_TIMEOUT`` and
  friends, unless the user set them): a dead server is seen in a few seconds.
- droptune's own deadline, :class:`GuardedTracker`: every call of the tracker runs on one
  caller-owned thread and is waited for at most :data:`CALL_S` seconds (a server that accepts
  connections and never answers, a DNS lookup that hangs: limits MLflow's settings do not
  cover), and at most :data:`HURRY_S` once the study is stopping (Ctrl-C, SIGTERM, an error),
  so that stopping never waits on a hung server. The wait is interruptible: Ctrl-C gets
  through at once.

After the first failure the tracker is *lost*: later calls do nothing (so that closing trials
in Optuna never waits on or fails with MLflow), and :func:`check_tracking` raises
:class:`TrackingLost` when the study file says ``stop``; with ``continue``, one warning line
says so and the study goes on, its summary saying at which trial MLflow stopped recording
(:func:`tracking_note`). Optuna's store is untouched either way: it has every trial.

Between droptune's own calls (an epoch may last minutes), a background check asks an http(s)
server's ``/health`` every few seconds (:mod:`droptune.tracking._liveness`) and loses the
tracker the same way when the server stops answering: detection within 25 s whatever the
epoch length; the fit executor's callback checks after every batch.

Only remote tracking URIs (``http(s)://``...) are guarded: a local SQLite store does not stop
answering, and its failures (a full disk) are reported as store errors.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from droptune.exceptions import StudyError
from droptune.tracking._liveness import Liveness, Probe, health_probe

if TYPE_CHECKING:
    from droptune.config import StudySpec
    from droptune.tracking._base import Tracker

__all__ = [
    "GuardedTracker", "TrackingLost", "bound_mlflow_http", "check_tracking", "guard", "guard_of", "hurry", "tracking_note",
]

log = logging.getLogger(__name__)

#: MLflow's HTTP settings droptune sets unless the environment already does: 5 s per request,
#: 2 retries with 1 s backoff (urllib3: 0 s, then 2 s) — a refused connection fails in ~3 s, a
#: silent server in ~18 s, both under :data:`CALL_S`.
MLFLOW_HTTP = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
}
CALL_S = 25.0  # the longest droptune waits for one tracker call before the tracker is lost
# An artifact upload (the report, plots: megabytes) may take longer on a slow link; a dead server
# still fails it within MLflow's bounded timeout, which applies between bytes.
ARTIFACT_S = 300.0
HURRY_S = 1.5  # the same once the study is stopping
_WARNED: set[str] = set()  # servers whose loss was announced (the confirmation's tracker: again)
_POLL_S = 0.2  # how often a waiting call looks whether the study started stopping meanwhile


class TrackingLost(StudyError):
    """The MLflow tracking server stopped answering and the study file says ``tracking_failure: stop``."""

    #: What the trial cut short records as its reason (the message itself is for the user).
    trial_reason = "the MLflow tracking server stopped answering (tracking_failure: stop); redone on resume"


def bound_mlflow_http() -> None:
    """Set MLflow's HTTP timeout and retries to :data:`MLFLOW_HTTP`, where the user has not set them.

    In ``os.environ``, because MLflow reads them there at each request (and the packed
    study's writer process inherits them).
    """
    for name, value in MLFLOW_HTTP.items():
        os.environ.setdefault(name, value)


#: Schemes of MLflow tracking servers: what can stop answering mid-study. A tracker another
#: module registers (droptune.tracking.TRACKERS) for a scheme of its own is not guarded.
REMOTE_SCHEMES = ("http", "https", "databricks")


def is_remote(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` names an MLflow tracking server (not a local SQLite file or ``none``)."""
    return tracking_uri.partition("://")[0].lower() in REMOTE_SCHEMES if "://" in tracking_uri else False


def guard(spec: StudySpec, make: Callable[[], Tracker]) -> Tracker:
    """The study's tracker from ``make()``, guarded by a :class:`GuardedTracker` when it talks to a server.

    ``make()`` itself talks to the server (it finds or creates the experiment), so it runs
    under the same deadline: a server already gone is lost at once (``continue``: the study
    runs without MLflow; ``stop``: :class:`TrackingLost`).
    """
    if not is_remote(spec.tracking_uri):
        return make()
    bound_mlflow_http()  # before the tracker's first request
    from droptune.tracking._null import NullTracker

    # Only an http(s) server has a /health to ask (a databricks:// URI is guarded by its calls alone).
    probe = health_probe(spec.tracking_uri) if spec.tracking_uri.startswith(("http://", "https://")) else None
    guarded = GuardedTracker(NullTracker(), tracking_uri=spec.tracking_uri, storage=spec.storage,
                             policy=spec.tracking_failure, probe=probe)
    inner = guarded._call(make)
    if inner is not None:
        guarded.inner, guarded.keeps_artifacts = inner, inner.keeps_artifacts
    guarded.check()
    return guarded


class _Call:
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class GuardedTracker:
    """A tracker whose calls are waited for in bounded time; after a failure, it does nothing.

    Implements :class:`~droptune.tracking.Tracker` by passing each call to ``inner`` on a
    daemon thread of its own (a call hung in a socket does not keep the process alive).

    Args:
        inner: The MLflow tracker.
        tracking_uri: Its URI, for messages.
        storage: The Optuna storage URL, for messages (what is safe).
        policy: ``stop`` or ``continue`` (the study file's ``tracking_failure``).
        probe: Asks the server whether it answers (:func:`~droptune.tracking._liveness.health_probe`);
            when given, a daemon thread asks it between calls (:class:`~droptune.tracking._liveness.Liveness`)
            from the first call until :meth:`end_study` or :meth:`close`.
        clock: Monotonic seconds, for that thread (tests pass their own).
    """

    def __init__(self, inner: Tracker, *, tracking_uri: str, storage: str, policy: str, probe: Probe | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.keeps_artifacts = inner.keeps_artifacts  # False once lost: no plots for a tracker that cannot keep them
        self.tracking_uri = tracking_uri
        self.storage = storage
        self.policy = policy
        self.lost: str | None = None  # why, once lost
        self.lost_at: int | None = None  # the trial number MLflow stopped recording at
        self._numbers: dict[str, int] = {}  # run id -> trial number
        self._last_number: int | None = None
        self._hurry = threading.Event()
        self._lock = threading.Lock()
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._serving = False  # whether a thread serves the calls (one ends when the study does)
        self.liveness = None if probe is None else Liveness(probe, lambda why: self._lose(why, None), clock=clock)

    def __getattr__(self, name: str) -> Any:  # the inner tracker's own attributes (experiment_id...)
        if name == "inner":  # not set yet (unpickling, a failed __init__)
            raise AttributeError(name)
        return getattr(self.inner, name)


    # -- the Tracker protocol ------------------------------------------------------------------

    def study_run(self, run_id: str | None = None) -> str:
        return self._call(self.inner.study_run, run_id, default=run_id or "untracked-study")

    def has_study_run(self, run_id: str) -> bool:
        return bool(self._call(self.inner.has_study_run, run_id, default=False))

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        self._last_number = number
        run_id = self._call(self.inner.start_trial, parent_run_id, number, params, number=number,
                            default=f"untracked-trial-{number}")
        self._numbers[run_id] = number
        return str(run_id)

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self._call(self.inner.log_epoch, run_id, epoch, metrics, number=self._numbers.get(run_id))

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        number = self._numbers.pop(run_id, None)
        self._call(self.inner.end_trial, run_id, state, summary=summary, reason=reason, number=number)

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        self._call(self.inner.close_trial_run, parent_run_id, number, reason, number=number)

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        return int(self._call(self.inner.close_finished_runs, parent_run_id, states, default=0))

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self._call(self.inner.log_artifact, run_id, path, artifact_path, limit=ARTIFACT_S)

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        self._call(self.inner.log_study_summary, run_id, metrics)

    def describe_study(self, run_id: str, *, params: Mapping[str, str], note: str, report: str | None = None) -> None:
        self._call(self.inner.describe_study, run_id, params=params, note=note, report=report)

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        self._call(self.inner.end_study, run_id, status=status)
        self._stop_liveness()
        self._calls.put(None)  # the thread ends once idle

    def flush(self) -> None:
        self._call(self.inner.flush)

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        return self.inner.runs_url(host, port)  # no request: a string from what is known

    def close(self) -> None:
        """Stop the inner tracker's helpers (a packed study's writer process), then this thread."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            self._call(close)
        self._stop_liveness()
        self._calls.put(None)

    def _stop_liveness(self) -> None:
        if self.liveness is not None:
            self.liveness.stop()

    # -- health --------------------------------------------------------------------------------

    def hurry(self) -> None:
        """The study is stopping: wait at most :data:`HURRY_S` for any call from now on."""
        self._hurry.set()

    def check(self) -> None:
        """Raise :class:`TrackingLost` if tracking was lost and the study file says ``stop``."""
        if self.lost is not None and self.policy == "stop":
            raise TrackingLost(self._stop_message())

    def note(self) -> str | None:
        """The summary's line about a lost tracker (None while it records)."""
        if self.lost is None:
            return None
        where = f"at trial {self.lost_at}" if self.lost_at is not None else "before the first trial"
        return (f"MLflow stopped recording {where} ({self.lost}); the Optuna study in {self.storage} has every "
                "trial. Runs left open are closed by the next `droptune tune` of this study once the server answers.")

    def _stop_message(self) -> str:
        where = f" at trial {self.lost_at}" if self.lost_at is not None else ""
        return (
            f"the MLflow tracking server {self.tracking_uri} stopped answering{where} ({self.lost}), so the study "
            f"stopped (tracking_failure: stop). Safe: the Optuna study in {self.storage} has every finished trial; "
            "a trial cut short is recorded as failed and redone on resume. To go on: restart the tracking server, "
            "then run the same command to resume (or set `tracking_failure: continue` in the study file to go on "
            "without MLflow)."
        )

    def _call(self, fn: Callable[..., Any], *args: Any, number: int | None = None, default: Any = None,
              limit: float = CALL_S, **kwargs: Any) -> Any:
        if self.lost is not None:
            return default
        call = _Call(fn, args, kwargs)
        with self._lock:
            self._calls.put(call)
            if not self._serving:
                self._serving = True
                threading.Thread(target=self._serve, name="droptune-tracking", daemon=True).start()
            if self.liveness is not None:
                self.liveness.start()  # (again after end_study: the confirmation reuses the tracker)
        start = time.monotonic()
        try:
            while not call.done.wait(_POLL_S):  # in slices: a Ctrl-C or a hurry is seen at once
                if self.lost is not None:  # lost meanwhile (the health check): no need to wait on
                    return default
                waited = HURRY_S if self._hurry.is_set() else limit
                if time.monotonic() - start >= waited:
                    self._lose(f"no answer within {waited:g} s", number)
                    return default
        except BaseException:  # Ctrl-C or SIGTERM while waiting: stopping; never wait long again
            self._hurry.set()
            raise
        if call.error is not None:
            if not isinstance(call.error, Exception):
                raise call.error
            self._lose(_first_line(call.error), number)
            return default
        return call.result

    def _lose(self, why: str, number: int | None) -> None:
        with self._lock:
            if self.lost is not None:
                return
            self.lost, self.keeps_artifacts = why, False
            self.lost_at = number if number is not None else self._last_number
        if self.liveness is not None:
            self.liveness.stop(wait=False)  # nothing left to watch (this may be its own thread)
        # Pending calls are dropped by the thread: nothing is written after the loss.
        if self.policy == "continue" and self.tracking_uri not in _WARNED:  # once per server and process
            _WARNED.add(self.tracking_uri)
            where = f" at trial {self.lost_at}" if self.lost_at is not None else ""
            log.warning(
                "the MLflow tracking server %s stopped answering%s (%s): the study goes on without MLflow "
                "(tracking_failure: continue); the Optuna study in %s keeps every trial.",
                self.tracking_uri, where, why, self.storage,
            )
        else:
            log.debug("MLflow tracking lost: %s", why)

    def _serve(self) -> None:
        while True:
            call = self._calls.get()
            if call is None:
                with self._lock:
                    if self._calls.empty():  # idle: a later call starts a new thread
                        self._serving = False
                        return
                continue
            if self.lost is None:
                try:
                    call.result = call.fn(*call.args, **call.kwargs)
                except BaseException as err:  # handed to the caller
                    call.error = err
            call.done.set()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def guard_of(tracker: object) -> GuardedTracker | None:
    """The :class:`GuardedTracker` in a chain of wrappers (``.tracker``: the CLI's EpochTap), if any."""
    for _ in range(8):
        if isinstance(tracker, GuardedTracker):
            return tracker
        tracker = getattr(tracker, "tracker", None)
        if tracker is None:
            return None
    return None


def check_tracking(tracker: object) -> None:
    """Raise :class:`TrackingLost` if ``tracker`` lost its server and its study says ``stop``."""
    found = guard_of(tracker)
    if found is not None:
        found.check()


def hurry(tracker: object) -> None:
    """The study is stopping: ``tracker``'s calls wait at most :data:`HURRY_S` from now on."""
    found = guard_of(tracker)
    if found is not None:
        found.hurry()


def tracking_note(tracker: object) -> str | None:
    """The summary's line when ``tracker`` lost its server mid-study (None otherwise)."""
    found = guard_of(tracker)
    return None if found is None else found.note()
