"""``droptune ui``: the mlflow server command line and the URL it prints (no server started here;
tests/e2e/test_dashboard.py starts a real one)."""

from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import droptune.commands._ui as ui
from droptune.cli import main


class FakeServer:
    """Stands in for subprocess.Popen: records the command, exits at once (or on Ctrl-C)."""

    calls: ClassVar[list[list[str]]] = []
    envs: ClassVar[list[dict[str, str]]] = []
    signals: ClassVar[list[int]] = []
    interrupt = False

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        FakeServer.calls.append(cmd)
        FakeServer.envs.append(env or {})

    def wait(self, timeout: float | None = None) -> int:
        if FakeServer.interrupt and not FakeServer.signals:
            raise KeyboardInterrupt  # the user pressed Ctrl-C while the server ran
        return 0

    def poll(self) -> int | None:
        return None if not FakeServer.signals else 0

    def send_signal(self, signum: int) -> None:
        FakeServer.signals.append(signum)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory with mlruns/mlflow.db (empty: the lookup is faked)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").touch()
    FakeServer.calls, FakeServer.envs, FakeServer.signals, FakeServer.interrupt = [], [], [], False
    looked_up = []
    monkeypatch.setattr(ui.subprocess, "Popen", FakeServer)
    monkeypatch.setattr(ui, "experiment_id", lambda uri, name: looked_up.append((uri, name)) or "7")
    return looked_up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_command_serves_the_store_and_its_artifacts(tmp_path):
    db = tmp_path / "mlruns" / "mlflow.db"
    cmd = ui.server_command(f"sqlite:///{db}", host="127.0.0.1", port=5123)
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    args = dict(zip(cmd[4::2], cmd[5::2]))
    assert args == {
        "--backend-store-uri": f"sqlite:///{db}",
        "--default-artifact-root": (tmp_path / "mlruns" / "artifacts").as_uri(),
        "--host": "127.0.0.1",
        "--port": "5123",
        "--workers": "1",
    }


def test_runs_url():
    assert ui.runs_url("127.0.0.1", 5000, "3") == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert ui.runs_url("0.0.0.0", 8080) == "http://127.0.0.1:8080/"


def test_ui_prints_the_studys_runs_url_and_starts_the_server(project, capsys):
    port = free_port()
    assert main(["ui", "tiny", "--port", str(port)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == f"http://127.0.0.1:{port}/#/experiments/7/runs?workflowType=machine_learning"
    assert project == [("sqlite:///mlruns/mlflow.db", "tiny")]  # default store, bound to localhost
    (cmd,) = FakeServer.calls
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == str(port)
    assert cmd[cmd.index("--backend-store-uri") + 1] == "sqlite:///mlruns/mlflow.db"
    assert FakeServer.envs[0]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"  # no GenAI job workers


def test_the_users_environment_wins(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert main(["ui", "--port", str(free_port())]) == 0
    assert FakeServer.envs[0]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"


def test_ctrl_c_stops_the_server_and_exits_cleanly(project):
    FakeServer.interrupt = True
    assert main(["ui", "--port", str(free_port())]) == 0
    assert FakeServer.signals == [signal.SIGINT]


def test_without_a_study_the_ui_root_is_printed(project, capsys):
    port = free_port()
    assert main(["ui", "--port", str(port)]) == 0
    assert capsys.readouterr().out.strip() == f"http://127.0.0.1:{port}/"
    assert project == []


def test_a_study_file_gives_the_name_and_tracking_uri(project, tmp_path, capsys):
    Path("other").mkdir()
    Path("other/m.db").touch()
    Path("s.yaml").write_text(
        "name: digits\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n"
        "tracking_uri: sqlite:///other/m.db\n"
    )
    assert main(["ui", "s.yaml", "--port", str(free_port())]) == 0
    assert project == [(f"sqlite:///{Path('other/m.db').resolve()}", "digits")]  # the study's project folder
    assert FakeServer.calls[0][FakeServer.calls[0].index("--default-artifact-root") + 1] == (
        (tmp_path / "other" / "artifacts").as_uri()
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ui", "--tracking-uri", "sqlite:///none/mlflow.db"], "no MLflow store at sqlite:///none/mlflow.db"),
        (["ui", "--tracking-uri", "http://127.0.0.1:5000"], "already a tracking server"),
        (["ui", "--port", "70000"], "--port must be in 1-65535"),
    ],
)
def test_bad_targets_are_clear_errors(project, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert FakeServer.calls == []


def test_a_busy_port_is_a_clear_error(project, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err.replace("\n", " ")
    assert FakeServer.calls == []
