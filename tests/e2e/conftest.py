"""Real servers on 127.0.0.1 for end-to-end tests: PostgreSQL (Debian's packages) and MLflow.

PostgreSQL is started from ``/usr/lib/postgresql/<version>/bin`` (``apt-get install -y
postgresql``) with a throwaway data directory and a free port; as root it runs as the
``postgres`` user, since it refuses root. Tests that need it are skipped, saying why, where
the binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# The worker tests' helpers and misbehaving models (importable by worker subprocesses too).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tuning"))

START_TIMEOUT_S = 90


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on 127.0.0.1, as a SQLAlchemy URL for psycopg 3."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install -y postgresql)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install droptune[postgres])")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="droptune-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=START_TIMEOUT_S)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "droptune", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c full_page_writes=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start")
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "droptune", "droptune")
        yield f"postgresql+psycopg://droptune@127.0.0.1:{port}/droptune"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=START_TIMEOUT_S, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mlflow server`` on 127.0.0.1 serving artifacts from a folder; yields (URI, that folder)."""
    base = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    artifacts = base / "artifacts"
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
        "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    log = (base / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + START_TIMEOUT_S
        while not _healthy(uri):
            if server.poll() is not None or time.monotonic() > end:
                pytest.fail(f"mlflow server did not start; its log:\n{(base / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield uri, artifacts
    finally:
        _kill_group(server, signal.SIGTERM)
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _kill_group(server, signal.SIGKILL)
            server.wait()
        log.close()


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the server and the workers it forked
    except ProcessLookupError:
        pass


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
