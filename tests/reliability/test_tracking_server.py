"""An MLflow tracking server that dies (or hangs) mid-study, with a real ``mlflow server`` and a
real ``droptune tune`` process: the study stops with one message or goes on without MLflow, as
its file says (``tracking_failure``), nothing finished is lost, no trial is left RUNNING, the
same command resumes once the server is back, and Ctrl-C gets through while MLflow hangs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from _workers_kit import load_trials, mlflow_runs, poll, reset_mlflow_stores, write_study
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
START_S = 300.0  # the server's and tune's start-up on a loaded 2-core machine (imports, migrations)
# How long a stopped study may take to exit: far less than MLflow's own retries (minutes) and
# than the 10-minute hang the Ctrl-C test sets MLflow's timeout to.
EXIT_S = 60.0
STORAGE = "sqlite:///studies/droptune.db"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class Server:
    """``mlflow server`` on a fixed port and store: killed, stopped (hung) and started again."""

    def __init__(self, base: Path) -> None:
        self.base, self.port = base, _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{self.base / 'mlflow.db'}",
            "--artifacts-destination", str(self.base / "artifacts"), "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", "1",
        ]
        with (self.base / "server.log").open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=self.base)
        poll(lambda: _healthy(self.uri) or self._exited(), timeout=START_S, what="mlflow server to answer")
        assert _healthy(self.uri), (self.base / "server.log").read_text()[-3000:]

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def signal(self, sig: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)  # the server and the workers it forked
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    base = tmp_path / "server"
    base.mkdir()
    found = Server(base)
    found.start()
    try:
        yield found
    finally:
        found.kill()


def _tune(project: Path, study: Path, **env: str) -> subprocess.Popen[str]:
    path = os.pathsep.join(filter(None, [str(REPO), str(REPO / "tests" / "tuning"), os.environ.get("PYTHONPATH")]))
    # No terminal (no COLUMNS, stdin not a TTY): each message is one line, as in a log file. And
    # the default SIGINT of a terminal's foreground job: a shell without job control starts
    # background jobs with SIGINT ignored, which Python would keep.
    inherited = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.Popen(
        [sys.executable, "-m", "droptune", "tune", study.name], cwd=project, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(inherited, PYTHONPATH=path, OMP_NUM_THREADS="1", **env),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )


def _study(project: Path, uri: str, policy: str, n_trials: int) -> Path:
    return write_study(project, name=f"dies-{policy}", n_trials=n_trials,
                       extra=f"tracking_uri: {uri}\ntracking_failure: {policy}\n")


def _unanswered(port: int) -> bool:
    """Whether a connection to ``port`` on this machine holds received bytes nobody has read."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues = fields[1], fields[3], fields[4]
        if int(local.split(":")[1], 16) == port and state == "01" and int(queues.split(":")[1], 16) > 0:
            return True
    return False


def _trials(name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return load_trials(name)
    except KeyError:  # not created yet
        return []


def _states(name: str) -> dict[TrialState, int]:
    found: dict[TrialState, int] = {}
    for trial in load_trials(name):
        found[trial.state] = found.get(trial.state, 0) + 1
    return found


def _complete(name: str) -> int:
    return sum(t.state == TrialState.COMPLETE for t in _trials(name))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "project"
    (folder / "studies").mkdir(parents=True)
    monkeypatch.chdir(folder)  # the study's SQLite storage, read by the test as by the command
    return folder


def test_server_death_stops_the_study_with_one_message_and_the_same_command_resumes(server, project):
    study = _study(project, server.uri, "stop", n_trials=10)  # under 20: no confirmation retrains
    name = "dies-stop"
    tune = _tune(project, study)
    try:
        poll(lambda: _complete(name) >= 2, timeout=START_S, what="two complete trials")
        server.kill()
        killed = time.monotonic()
        out, err = tune.communicate(timeout=EXIT_S)
        print(f"tune exited {time.monotonic() - killed:.1f} s after the server was killed; stderr:\n{err}")
    finally:
        if tune.poll() is None:
            tune.kill()
    assert tune.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert f"error: the MLflow tracking server {server.uri} stopped answering at trial " in lines[0]
    assert f"Safe: the Optuna study in {STORAGE.replace('///', '///' + str(project) + '/')} has every finished trial" \
        in lines[0]
    assert "restart the tracking server, then run the same command to resume" in lines[0]
    assert "Traceback" not in err
    states = _states(name)
    assert TrialState.RUNNING not in states, states  # the trial cut short is FAIL, redone on resume
    done = states.get(TrialState.COMPLETE, 0)
    assert 2 <= done < 10

    server.start()  # same port, same store
    resumed = _tune(project, study)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    states = _states(name)
    assert states.get(TrialState.COMPLETE, 0) + states.get(TrialState.PRUNED, 0) == 10, states
    assert TrialState.RUNNING not in states
    reset_mlflow_stores()
    parents, children = mlflow_runs(name, server.uri)
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert not [c for c in children if c.info.status == "RUNNING"], "a run left open after the resume"


def test_server_death_with_continue_goes_on_without_mlflow(server, project):
    study = _study(project, server.uri, "continue", n_trials=12)
    name = "dies-continue"
    tune = _tune(project, study)
    try:
        poll(lambda: _complete(name) >= 2, timeout=START_S, what="two complete trials")
        server.kill()
        out, err = tune.communicate(timeout=600)
    finally:
        if tune.poll() is None:
            tune.kill()
    assert tune.returncode == 0, err
    warnings = [line for line in err.splitlines() if "stopped answering" in line]
    assert len(warnings) == 1, err
    assert "the study goes on without MLflow (tracking_failure: continue)" in warnings[0]
    assert "Traceback" not in err
    states = _states(name)
    assert states.get(TrialState.COMPLETE, 0) + states.get(TrialState.PRUNED, 0) == 12, states
    assert TrialState.RUNNING not in states
    assert "MLflow stopped recording at trial " in out, out
    n = int(out.split("MLflow stopped recording at trial ")[1].split()[0])
    assert 2 <= n < 12


def _gated_study(project: Path, uri: str, *, pace: float, n_train: int = 64) -> tuple[Path, Path, Path]:
    """A study of GatedTinyModule: its first epoch waits for ``gate`` (after making ``ready``), then
    takes ``pace`` s a batch. Returns the study file, the gate and the ready file."""
    gate, ready = project / "gate", project / "ready"
    path = project / "gated.yaml"
    path.write_text(
        "name: gated\n"
        f"model: {{class_path: droptune.testing.GatedTinyModule, init_args: {{gate: '{gate}', ready: '{ready}', "
        f"pace: {pace}}}}}\n"
        f"data: {{class_path: droptune.testing.TinyDataModule, init_args: {{n_train: {n_train}}}}}\n"
        "search: {n_trials: 4, sampler: random, pruner: none}\n"
        "trainer: {max_epochs: 2, early_stopping_patience: null, accelerator: cpu}\n"
        f"tracking_uri: {uri}\ntracking_failure: stop\n"
    )
    return path, gate, ready


def test_server_death_during_a_long_epoch_is_seen_by_the_health_check(server, project):
    """An epoch of ~64 s (256 batches of 0.25 s) with no MLflow call in it: only the health check
    (GET /health every 10 s, lost after 2 failures) sees the server die, and the batch-end check
    stops the trial; a 60 s deadline on the exit is shorter than the epoch."""
    study, gate, ready = _gated_study(project, server.uri, pace=0.25, n_train=4096)
    tune = _tune(project, study)
    try:
        poll(ready.exists, timeout=START_S, what="training to reach the long epoch")
        server.kill()
        killed = time.monotonic()
        gate.touch()
        out, err = tune.communicate(timeout=EXIT_S)
        print(f"tune exited {time.monotonic() - killed:.1f} s after the server was killed; stderr:\n{err}")
    finally:
        if tune.poll() is None:
            tune.kill()
    assert tune.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    message = " ".join(err[err.index("error:"):].split())  # the one message, however the terminal wrapped it
    assert (f"error: the MLflow tracking server {server.uri} stopped answering at trial 0 (no answer to 2 checks "
            "in a row, /health: [Errno 111] Connection refused)") in message
    assert "restart the tracking server, then run the same command to resume" in message
    assert "Traceback" not in err
    states = _states("gated")
    assert TrialState.RUNNING not in states, states
    assert states == {TrialState.FAIL: 1}, states  # the trial cut short mid-epoch, redone on resume


def test_ctrl_c_gets_through_while_mlflow_hangs(server, project):
    """The server is frozen (SIGSTOP: connections accepted, never answered) and MLflow's own
    timeout set to 10 minutes: only droptune's bound can let Ctrl-C through. Training waits on a
    file until the server is frozen, so that the trial's end is a request that hangs."""
    study, gate, ready = _gated_study(project, server.uri, pace=0.0)
    tune = _tune(project, study, MLFLOW_HTTP_REQUEST_TIMEOUT="600")
    try:
        poll(ready.exists, timeout=START_S, what="training to wait on the gate")
        server.signal(signal.SIGSTOP)
        gate.touch()
        # A request sent to the frozen server and not answered (bytes waiting in its socket): an
        # MLflow call of tune is hanging now (the health check would lose the server only 15 s on).
        poll(lambda: _unanswered(server.port), timeout=30, what="an MLflow request hanging on the frozen server")
        tune.send_signal(signal.SIGINT)
        sent = time.monotonic()
        # The goal is out within 5 s of Ctrl-C (measured 2.9-5.0 s on a loaded core); a test is no
        # timer, so it allows 12 s: still before the health check could end the study instead (exit
        # 2, 15 s or more after the freeze), so exit 130 below is Ctrl-C getting through.
        out, err = tune.communicate(timeout=12)
        print(f"tune exited {time.monotonic() - sent:.1f} s after Ctrl-C; stderr:\n{err}")
    finally:
        server.signal(signal.SIGCONT)
        if tune.poll() is None:
            tune.kill()
    assert tune.returncode == 130, err
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and "run the same command to resume" in lines[0], err
    assert "Traceback" not in err
    states = _states("gated")
    assert TrialState.RUNNING not in states, states
