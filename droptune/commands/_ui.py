"""``droptune ui``: the MLflow UI on the project's tracking store, and the study's URL."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from droptune import tracking
from droptune.commands._base import command, err, out
from droptune.config import load_config, require_sqlite_store
from droptune.exceptions import ConfigError, StudyError
from droptune.tracking import artifact_root

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
RUNS_PAGE = "#/experiments/{id}/runs?workflowType=machine_learning"
# MLflow 3's server also starts a job runner and ~7 huey worker processes for its GenAI
# features (scorers, trace archival); the runs dashboard needs none of them.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
STOP_TIMEOUT_S = 15


def server_command(tracking_uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow server`` command line serving ``tracking_uri`` (run with this Python).

    A SQLite store's artifacts are the ``artifacts/`` folder beside the database, where
    droptune's tracker puts them.
    """
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri]
    root = artifact_root(tracking_uri)
    if root is not None:
        cmd += ["--default-artifact-root", root]
    return cmd + ["--host", host, "--port", str(port), "--workers", "1"]


def runs_url(host: str, port: int, experiment_id: str | None = None) -> str:
    """URL of the UI, or of an experiment's runs table."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown}:{port}/"
    return base + RUNS_PAGE.format(id=experiment_id) if experiment_id is not None else base


def experiment_id(tracking_uri: str, name: str) -> str:
    """The id of experiment ``name`` (a study's), or a StudyError listing the experiments."""
    found = tracking.experiment_id(tracking_uri, name)
    if found is None:
        listed = ", ".join(repr(n) for n in tracking.experiment_names(tracking_uri)) or "none"
        raise StudyError(f"no MLflow experiment named {name!r} in {tracking_uri}; experiments there: {listed}.")
    return found


def add_ui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "study", nargs="?", metavar="STUDY_FILE|STUDY_NAME", help="print the URL of this study's runs table"
    )
    parser.add_argument("--tracking-uri", help=f"MLflow tracking URI (default: the file's, or {DEFAULT_TRACKING_URI})")
    parser.add_argument("--port", type=int, default=5000, help="port to serve on (default 5000)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")


@command("ui", add_ui_arguments, help="start the MLflow UI on the project's tracking store")
def ui_command(args: argparse.Namespace) -> int:
    tracking_uri, name = _target(args)
    _check_store(tracking_uri)
    _check_port(args.host, args.port)
    exp = experiment_id(tracking_uri, name) if name else None
    cmd = server_command(tracking_uri, host=args.host, port=args.port)
    err.print(f"starting the MLflow UI on {tracking_uri} (Ctrl-C stops it)", highlight=False, markup=False)
    out.print(runs_url(args.host, args.port, exp), highlight=False, markup=False, soft_wrap=True)
    env = {**SERVER_ENV, **os.environ}  # the user's own setting wins
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None  # stopped: stop the server
    try:
        server = subprocess.Popen(cmd, env=env)
        try:
            return server.wait()
        except KeyboardInterrupt:
            _stop(server)
            return 0
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The tracking URI and the experiment (study) name the arguments name."""
    if args.study and Path(args.study).is_file():
        spec = load_config(args.study)
        return args.tracking_uri or spec.tracking_uri, spec.name
    return args.tracking_uri or DEFAULT_TRACKING_URI, args.study


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
    """Stop the server gracefully (it forwards the signal to its workers), else kill it."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal sends it too
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
