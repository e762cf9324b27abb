"""MLflow's trial writes in a child process, off the interpreter that trains.

A child run costs about 30 ms of Python in MLflow and SQLAlchemy (create the run, one
batch of its metrics, terminate it). On a writer thread that time still holds the GIL the
training loop needs, so a packed population of small models spent more time waiting for
MLflow than training (a second writer thread gained nothing: same lock). Here the trial
writes (:meth:`~OffloadedTracker.start_trial`, :meth:`~OffloadedTracker.log_epoch`,
:meth:`~OffloadedTracker.end_trial`) go down a pipe to a process that owns a tracker of the
same kind (built from the registry, :func:`droptune.tracking.build_tracker`); everything else
(the parent run, artifacts, queries) goes to the wrapped tracker in this process, which first
waits for the child to catch up.

What is promised, as for the in-process tracker: everything is written by the time
:meth:`~OffloadedTracker.flush` returns; a failed write surfaces as an error at the next
call, which stops the worker as a failing store should; if this process dies, the child
still writes everything it was sent and closes the runs left open as failed. A child run
is named by a handle this process chooses; the child maps it to MLflow's run id. The pipe
has a bounded buffer (:data:`PIPE_BYTES`), so MLflow lags the trials by a few thousand
messages at most: past that, sending waits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import uuid
import weakref
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from droptune.exceptions import StudyError
from droptune.tracking._base import Tracker
from droptune.tracking._registry import build_tracker

__all__ = ["OffloadedTracker"]

log = logging.getLogger(__name__)

# Why the child closes a run it was never told to end: the process that trained it died.
ORPHAN_REASON = "the worker process exited before this trial ended"
POLL_S = 1.0  # how often a wait for the child checks that it is still alive
# The request pipe's buffer: 1 MiB (Linux's default pipe-max-size; 64 KiB otherwise) holds
# about 7000 messages, two populations of 128 trials x 20 epochs. A population's 128 run
# creations arrive at once and take the child seconds; a 64 KiB pipe made training wait.
PIPE_BYTES = 1 << 20


class OffloadedTracker:
    """Any registered tracker, wrapped so that its trial writes run in a child process.

    The child starts with the first trial (a study that trains nothing starts none) and stops
    with :meth:`end_study`, :meth:`close`, or when this tracker is garbage-collected.

    Args:
        tracking_uri: Tracking URI (its scheme picks the tracker, here and in the child).
        experiment: Experiment name (the study name).
        tracker: The tracker in this process (default: the registered one for ``tracking_uri``).
    """

    def __init__(self, *, tracking_uri: str, experiment: str, tracker: Tracker | None = None) -> None:
        self.tracker = tracker if tracker is not None else build_tracker(tracking_uri, experiment)
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.keeps_artifacts = self.tracker.keeps_artifacts
        self._child: _Child | None = None
        self._send_lock = threading.Lock()

    # The parent run, artifacts and queries: the wrapped tracker's, in this process.
    def study_run(self, run_id: str | None = None) -> str:
        return self.tracker.study_run(run_id)

    def has_study_run(self, run_id: str) -> bool:
        return self.tracker.has_study_run(run_id)

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(run_id, path, artifact_path)

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        self.tracker.log_study_summary(run_id, metrics)

    def describe_study(self, run_id: str, *, params: Mapping[str, str], note: str, report: str | None = None) -> None:
        self.tracker.describe_study(run_id, params=params, note=note, report=report)

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        return self.tracker.runs_url(host, port)

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        """Queue the child run of trial ``number``; return its handle."""
        handle = f"offloaded-{uuid.uuid4().hex}"
        self._send(("start", handle, parent_run_id, number, dict(params)))
        return handle

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """Queue one epoch's metrics of a child run."""
        self._send(("epoch", run_id, epoch, {k: float(v) for k, v in metrics.items()}))

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        """Queue the end of a child run (its summary, state and reason)."""
        self._send(("end", run_id, state, dict(summary or {}), reason))

    def flush(self) -> None:
        """Wait until the child has written everything sent so far; raise its first error."""
        if self._child is not None:
            with self._send_lock:
                self._child.call(("flush",))
        self.tracker.flush()

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        """Close trial ``number``'s run if open, once the child has written what it was sent."""
        try:
            self.flush()
        except StudyError:
            log.warning("the MLflow writer process failed", exc_info=True)
        self.tracker.close_trial_run(parent_run_id, number, reason)

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        """As the wrapped tracker's, once the child has written what it was sent."""
        self.flush()
        return self.tracker.close_finished_runs(parent_run_id, states)

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        """Write everything, stop the child, close the parent run."""
        self.close()
        self.tracker.end_study(run_id, status=status)

    def close(self) -> None:
        """Write everything the child was sent and stop it (idempotent)."""
        child, self._child = self._child, None
        if child is not None:
            with self._send_lock:
                child.stop()

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            if self._child is None:
                self._child = _Child(self.tracking_uri, self.experiment)
                weakref.finalize(self, self._child.stop)
            self._child.send(message)


class _Child:
    """The writer process and the two pipes to it (requests down, replies and errors up)."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        # A fresh interpreter, not multiprocessing: fork would copy locks that this process's
        # threads (the bookkeeper, torch's) may hold, and spawn re-runs the user's main
        # script, which a `droptune.tune(...)` at the top of a script would start again. Its
        # own session: Ctrl-C and a process group's SIGTERM reach the worker, which then
        # closes the pipe; the writer ends when it has written what it was sent.
        down_read, down_write = os.pipe()
        up_read, up_write = os.pipe()
        root = str(Path(__file__).resolve().parents[2])  # where this droptune is imported from
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from droptune.tracking._offload import main; main()",
             str(down_read), str(up_write), tracking_uri, experiment],
            pass_fds=(down_read, up_write), stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        # Only the child may hold these ends: its reads end (EOF) when this process dies.
        os.close(down_read)
        os.close(up_write)
        self.requests = Connection(down_write, readable=False)
        self.replies = Connection(up_read, writable=False)
        _widen(self.requests)
        self.stopped = False

    def send(self, message: tuple[Any, ...]) -> None:
        self._raise_reported()
        try:
            self.requests.send(message)  # blocks while the pipe is full: MLflow's lag is bounded
        except (BrokenPipeError, OSError):
            raise StudyError(self._died()) from None

    def call(self, message: tuple[Any, ...]) -> None:
        """Send ``message`` and wait for the child's answer to it."""
        self.send(message)
        while True:
            reply = self._receive()
            if reply[0] == "error":
                raise StudyError(f"MLflow tracking failed in the writer process: {reply[1]}")
            if reply[0] == "done":
                return

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.call(("stop",))
        except StudyError:
            log.warning("the MLflow writer process failed while stopping", exc_info=True)
        finally:
            self.requests.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log.warning("the MLflow writer process did not stop within 60 s; left running")
            self.replies.close()

    def _receive(self) -> tuple[Any, ...]:
        while not self.replies.poll(POLL_S):
            if self.process.poll() is not None:
                raise StudyError(self._died())
        try:
            return self.replies.recv()
        except EOFError:
            raise StudyError(self._died()) from None

    def _raise_reported(self) -> None:
        """Raise an error the child reported since the last call (without waiting)."""
        while self.replies.poll(0):
            try:
                reply = self.replies.recv()
            except EOFError:
                raise StudyError(self._died()) from None
            if reply[0] == "error":
                raise StudyError(f"MLflow tracking failed in the writer process: {reply[1]}")

    def _died(self) -> str:
        return f"the MLflow writer process exited (exit code {self.process.poll()}); see the log above"


def _widen(connection: Connection) -> None:
    """Give a pipe :data:`PIPE_BYTES` of buffer where the system allows (Linux)."""
    try:
        import fcntl

        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # another system, or a lower limit: the default
        log.debug("pipe buffer left at the system default", exc_info=True)


def main() -> None:
    """The writer process's entry point: ``REQUESTS_FD REPLIES_FD TRACKING_URI EXPERIMENT``."""
    requests, replies, tracking_uri, experiment = sys.argv[1:5]
    serve(Connection(int(requests), writable=False), Connection(int(replies), readable=False),
          tracking_uri, experiment)


def serve(requests: Connection, replies: Connection, tracking_uri: str, experiment: str) -> None:
    """The child: apply the requests in order until told to stop or the parent is gone."""
    # Ctrl-C and SIGTERM reach the whole process group: the parent decides how the study ends
    # and then closes the pipe; the child must live to write what it was sent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    tracker = build_tracker(tracking_uri, experiment)
    runs: dict[str, str] = {}  # handle -> MLflow run id
    while True:
        try:
            message = requests.recv()
        except EOFError:  # the parent died: write what it sent, close what it left open
            for run_id in runs.values():
                _quietly(tracker.end_trial, run_id, "failed", reason=ORPHAN_REASON)
            return
        kind = message[0]
        try:
            if kind == "start":
                _, handle, parent, number, params = message
                runs[handle] = tracker.start_trial(parent, number, params)
            elif kind == "epoch":
                _, handle, epoch, metrics = message
                tracker.log_epoch(runs[handle], epoch, metrics)
            elif kind == "end":
                _, handle, state, summary, reason = message
                tracker.end_trial(runs.pop(handle), state, summary=summary, reason=reason)
            elif kind in ("flush", "stop"):
                tracker.flush()
                replies.send(("done",))
                if kind == "stop":
                    return
        except Exception as err:  # reported to the parent, which stops; the child keeps serving
            log.debug("MLflow write failed in the writer process", exc_info=True)
            replies.send(("error", f"{type(err).__name__}: {err}"))


def _quietly(fn: Any, *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except Exception:
        log.warning("could not close an MLflow run", exc_info=True)
