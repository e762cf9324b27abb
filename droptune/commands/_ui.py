"""``droptune ui``: the MLflow UI on the project's tracking store, and the study's URL.

The URL is printed only once the server answers (MLflow takes seconds to start, longer on a
busy machine); a server that exits or never answers is one error with the end of its log.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from types import FrameType
from typing import IO

from droptune.commands._base import command, err, out, say
from droptune.config import DEFAULT_TRACKING_URI, load_config
from droptune.exceptions import ConfigError, DroptuneError, StudyError
from droptune.stores._urls import require_sqlite_store

log = logging.getLogger(__name__)

# The model-training view: without it, opening a run can switch MLflow into its GenAI view.
WORKFLOW = "machine_learning"
# MLflow 3's server also starts a job runner and ~7 huey worker processes for its GenAI
# features (scorers, trace archival); the runs dashboard needs none of them.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
STOP_TIMEOUT_S = 15
# Ready in ~6 s with one worker on an idle machine; a loaded 2-core machine took 35 s.
READY_TIMEOUT_S = 120.0
POLL_S = 0.25  # how often the health endpoint is asked while the server starts
LOG_LINES = 30  # how much of the server's log an error shows
# The objective droptune optimises unless a study file says otherwise.
DEFAULT_OBJECTIVE = ("best_val_loss", True)


def server_command(tracking_uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow server`` command line serving ``tracking_uri`` (run with this Python).

    A SQLite store's artifacts are the ``artifacts/`` folder beside the database, where
    droptune's tracker puts them. One worker: the server is ready in half the time.
    """
    # Lazily, as every import of droptune.tracking here (it imports MLflow): `--help` stays fast.
    from droptune.stores._storage import artifact_root

    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    root = artifact_root(tracking_uri)
    if root is not None:
        cmd += ["--default-artifact-root", root]
    return cmd + ["--host", host, "--port", str(port), "--workers", "1"]


def runs_url(
    host: str,
    port: int,
    experiment_id: str | None = None,
    *,
    view: str | None = None,
    order_by: str | None = None,
    ascending: bool = True,
) -> str:
    """URL of the UI, or of an experiment's runs table in MLflow's model-training view.

    Args:
        host: The address the server binds (a wildcard address is shown as 127.0.0.1).
        port: Its port.
        experiment_id: The experiment whose runs to open; None for the UI's start page.
        view: A saved view of the runs table to open (see :func:`droptune.tracking.ensure_runs_view`).
        order_by: Without a view, the run metric to sort the table by (``best_val_loss``).
        ascending: With ``order_by``, True to list the lowest value first.

    Returns:
        The URL.

    Example:
        >>> runs_url("0.0.0.0", 5000, "3", order_by="best_val_loss")
        'http://127.0.0.1:5000/#/experiments/3/runs?orderByKey=metrics.%60best_val_loss%60&orderByAsc=true&workflowType=machine_learning'
    """
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown}:{port}/"
    if experiment_id is None:
        return base
    # MLflow ignores a saved view when the URL also names a sort: one or the other.
    query = {}
    if view is not None:
        query["viewStateShareKey"] = view
    elif order_by is not None:
        query["orderByKey"] = f"metrics.`{order_by}`"
        query["orderByAsc"] = "true" if ascending else "false"
    query["workflowType"] = WORKFLOW
    return f"{base}#/experiments/{experiment_id}/runs?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


def experiment_id(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name`` (a study's), or a StudyError listing the experiments."""
    from droptune import tracking

    found = tracking.experiment_id(tracking_uri, name)
    if found is None:
        listed = ", ".join(repr(n) for n in tracking.experiment_names(tracking_uri)) or "none"
        raise StudyError(f"no MLflow experiment named {name!r} in {tracking_uri}; experiments there: {listed}.")
    return found


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study",
        nargs="?",
        metavar="STUDY_FILE|STUDY_NAME",
        help="open this study's runs table (default: the store's only study, if it holds one)",
    )
    parser.add_argument("--tracking-uri", help=f"MLflow tracking URI (default: the file's, or {DEFAULT_TRACKING_URI})")
    parser.add_argument("--port", type=int, default=5000, help="port to serve on (default 5000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--open", action="store_true", help="also open the URL in a web browser once it answers")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=READY_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up when the server has not answered after this long (default {READY_TIMEOUT_S:g})",
    )


@command("ui", add_ui_arguments, help="start the MLflow UI on the project's tracking store")
def ui_command(args: argparse.Namespace) -> int:
    tracking_uri, name, objective = _target(args)
    _check_store(tracking_uri)
    _check_port(args.host, args.port)
    if not args.ready_timeout > 0:
        raise ConfigError(f"--ready-timeout must be a number of seconds > 0; got {args.ready_timeout}.")
    url = _study_url(args.host, args.port, tracking_uri, name, objective)
    cmd = server_command(tracking_uri, host=args.host, port=args.port)
    say(err, f"starting the MLflow UI on {tracking_uri} (Ctrl-C stops it)")
    env = {**SERVER_ENV, **os.environ}  # the user's own setting wins
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None  # stopped: stop the server
    try:
        # A session of its own: Ctrl-C in the terminal reaches droptune only, which then stops the
        # server quietly (uvicorn, interrupted itself, prints a ~40-line traceback as it exits).
        server = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True,
        )
        server_log = _ServerLog(server.stdout)
        try:
            _wait_until_served(server, runs_url(args.host, args.port), args.ready_timeout, server_log)
            say(out, url)
            server_log.forward()  # from now on the user sees what the server says, as `mlflow ui` would
            if args.open:
                import webbrowser  # here: it (and urllib.request) cost `droptune --help` 50 ms

                webbrowser.open(url)
            return server.wait()
        except KeyboardInterrupt:
            server_log.forward(False)  # what the server says as it stops is noise
            _stop(server)
            say(err, "stopped the MLflow UI.")
            return 0
        except DroptuneError:
            _stop(server)
            raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _target(args: argparse.Namespace) -> tuple[str, str | None, tuple[str, bool] | None]:
    """The tracking URI, the experiment (study) name and, from a study file, its objective."""
    if args.study and Path(args.study).is_file():
        spec = load_config(args.study)
        objective = (f"best_{spec.objective.metric}", spec.objective.direction == "minimize")
        return args.tracking_uri or spec.tracking_uri, spec.name, objective
    return args.tracking_uri or DEFAULT_TRACKING_URI, args.study, None


def _study_url(host: str, port: int, tracking_uri: str, name: str | None, objective: tuple[str, bool] | None) -> str:
    """The runs table of the named study, or of the store's only study; else the UI's start page."""
    from droptune import tracking

    if name is not None:
        exp: str | None = experiment_id(tracking_uri, name)
    else:
        studies = tracking.study_experiments(tracking_uri)
        exp = next(iter(studies.values())) if len(studies) == 1 else None
    if exp is None:
        return runs_url(host, port)
    # A study named on the command line, not by its file, may still be running (no best trial
    # yet): then droptune's default objective is the best guess.
    metric, ascending = objective or tracking.study_objective(tracking_uri, exp) or DEFAULT_OBJECTIVE
    try:
        view = tracking.ensure_runs_view(tracking_uri, exp, metric=metric, ascending=ascending)
    except Exception as error:  # a read-only or busy store: the sort still fits in the URL
        log.warning("could not save droptune's view of the runs table (%s); the URL sorts the runs only", error)
        view = None
    if view is None:  # not saved (no trial has its rates yet): the sort still fits in the URL
        return runs_url(host, port, exp, order_by=metric, ascending=ascending)
    return runs_url(host, port, exp, view=view)


class _ServerLog:
    """Reads the server's output as it comes: kept (the last lines) until ready, then passed on."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._forward = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name="mlflow-server-log")
        self._thread.start()

    def _pump(self, stream: IO[str] | None) -> None:
        for line in stream or ():
            if self._forward.is_set():
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                self.lines.append(line)

    def forward(self, on: bool = True) -> None:
        """Pass the server's lines on to stderr from now on (or, ``on`` False, no longer)."""
        if on:
            self._forward.set()
        else:
            self._forward.clear()

    def tail(self, wait_s: float = 5.0) -> str:
        """The last lines, once the server's output has ended (bounded wait: a worker may hold it)."""
        self._thread.join(timeout=wait_s)
        return "".join(self.lines).rstrip() or "(the server printed nothing)"


def _wait_until_served(server: subprocess.Popen, url: str, timeout_s: float, server_log: _ServerLog) -> None:
    """Return once ``url`` answers 200; raise if the server exits first or ``timeout_s`` passes."""
    import urllib.error
    import urllib.request

    health = url.rstrip("/") + "/health"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(health, timeout=max(POLL_S, 1.0)) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass  # not listening yet, or not ready: ask again
        try:
            code = server.wait(timeout=POLL_S)  # the pause between polls, cut short if the server dies
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline:
                continue
            _stop(server)
            raise DroptuneError(
                f"the MLflow server did not answer at {health} within {timeout_s:g} s; stopped it. "
                f"Pass a longer --ready-timeout on a busy machine. The end of its log:\n{server_log.tail()}"
            ) from None
        raise DroptuneError(
            f"the MLflow server exited with code {code} before it answered at {health}. The end of its log:\n"
            f"{server_log.tail()}"
        )


def _check_store(tracking_uri: str) -> None:
    if tracking_uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"{tracking_uri} is already a tracking server: open it in a browser; `droptune ui` serves a local store."
        )
    require_sqlite_store(tracking_uri, what="MLflow store", flag="--tracking-uri")


def _check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1-65535; got {port}.")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot serve on {host}:{port}: {error.strerror or error}. Pass another --port (or --host)."
            ) from None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop(server: subprocess.Popen) -> None:
    """Stop the server gracefully, its workers too (its process group), else kill them."""
    if server.poll() is None:
        _signal_group(server, signal.SIGINT)  # what Ctrl-C in a terminal would send them
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(server, signal.SIGKILL)
        server.wait()


def _signal_group(server: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(server.pid, signum)  # the server leads its own session (see ui_command)
    except (ProcessLookupError, PermissionError):
        server.send_signal(signum)
