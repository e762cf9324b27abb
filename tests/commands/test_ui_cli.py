"""``droptune ui``: the server command line, the URL it prints and when it prints it.

A fake ``mlflow server`` (tests/commands/_fake_mlflow_server.py: a real process answering
real HTTP requests, on the real arguments) stands in for MLflow, which takes seconds to start;
tests/e2e/test_dashboard.py starts a real one. The store lookups are faked here and tested on
a real store in tests/tracking/test_views.py.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.parse
from pathlib import Path

import pytest

import droptune.commands._ui as ui
from droptune import tracking  # the command imports it when it runs (it imports MLflow): faked there
from droptune.cli import main

FAKE_SERVER = Path(__file__).with_name("_fake_mlflow_server.py")
REAL_SERVER_COMMAND = ui.server_command


class Store:
    """What the faked store lookups were asked, and what they answer."""

    def __init__(self) -> None:
        self.looked_up: list[tuple[str, str]] = []
        self.studies = {"tiny": "7"}
        self.objective: tuple[str, bool] | None = ("best_val_loss", True)
        self.views: list[tuple[str, str, str, bool]] = []
        self.view_error: Exception | None = None

    def experiment_id(self, uri: str, name: str) -> str:
        self.looked_up.append((uri, name))
        return "7"

    def ensure_runs_view(self, uri: str, exp: str, *, metric: str, ascending: bool) -> str:
        if self.view_error is not None:
            raise self.view_error
        self.views.append((uri, exp, metric, ascending))
        return "droptune"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory with mlruns/mlflow.db, the fake server in MLflow's place, faked lookups."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "mlruns" / "mlflow.db").touch()
    monkeypatch.setenv("FAKE_MLFLOW_MODE", "late")
    monkeypatch.setenv("FAKE_MLFLOW_RECORD", str(tmp_path / "fake.jsonl"))
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)

    def fake_command(tracking_uri: str, *, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
        cmd = REAL_SERVER_COMMAND(tracking_uri, host=host, port=port)
        assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
        return [sys.executable, str(FAKE_SERVER), *cmd[4:]]

    store = Store()
    monkeypatch.setattr(ui, "server_command", fake_command)
    monkeypatch.setattr(ui, "experiment_id", store.experiment_id)
    monkeypatch.setattr(tracking, "study_experiments", lambda uri: dict(store.studies))
    monkeypatch.setattr(tracking, "study_objective", lambda uri, exp: store.objective)
    monkeypatch.setattr(tracking, "ensure_runs_view", store.ensure_runs_view)
    return store


def events(kind: str | None = None) -> list[dict]:
    path = Path("fake.jsonl")
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in found if kind is None or e["event"] == kind]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(url.split("?", 1)[1]))


def test_server_command_serves_the_store_and_its_artifacts_with_one_worker(tmp_path):
    db = tmp_path / "mlruns" / "mlflow.db"
    cmd = ui.server_command(f"sqlite:///{db}", host="127.0.0.1", port=5123)
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    args = dict(zip(cmd[4::2], cmd[5::2]))
    assert args == {
        "--backend-store-uri": f"sqlite:///{db}",
        "--default-artifact-root": (tmp_path / "mlruns" / "artifacts").as_uri(),
        "--host": "127.0.0.1",
        "--port": "5123",
        "--workers": "1",  # ready in ~6 s instead of ~15 s
    }


def test_runs_url_opens_a_view_or_a_sort_in_the_model_training_view():
    assert ui.runs_url("0.0.0.0", 8080) == "http://127.0.0.1:8080/"
    viewed = ui.runs_url("127.0.0.1", 5000, "3", view="droptune")
    assert viewed.startswith("http://127.0.0.1:5000/#/experiments/3/runs?")
    assert query(viewed) == {"viewStateShareKey": "droptune", "workflowType": "machine_learning"}
    sorted_ = ui.runs_url("127.0.0.1", 5000, "3", order_by="best_val_acc", ascending=False)
    assert query(sorted_) == {
        "orderByKey": "metrics.`best_val_acc`",
        "orderByAsc": "false",
        "workflowType": "machine_learning",
    }


def test_the_url_is_printed_only_once_the_server_answers(project, monkeypatch, capsys):
    seen_at_print: list[list[dict]] = []
    real_print = ui.out.print
    monkeypatch.setattr(ui.out, "print", lambda *a, **k: (seen_at_print.append(events("health")), real_print(*a, **k)))
    port = free_port()
    assert main(["ui", "tiny", "--port", str(port)]) == 0  # the fake server exits after answering 200
    printed = capsys.readouterr()
    assert printed.out.strip() == f"http://127.0.0.1:{port}/#/experiments/7/runs?viewStateShareKey=droptune&workflowType=machine_learning"
    # Two "not ready" answers came first; the URL waited for the 200.
    assert [[e["code"] for e in seen] for seen in seen_at_print] == [[503, 503, 200]]
    assert project.looked_up == [("sqlite:///mlruns/mlflow.db", "tiny")]  # default store
    assert project.views == [("sqlite:///mlruns/mlflow.db", "7", "best_val_loss", True)]
    (start,) = events("start")
    argv = start["argv"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == str(port)
    assert argv[argv.index("--backend-store-uri") + 1] == "sqlite:///mlruns/mlflow.db"
    assert start["job_execution"] == "false"  # no GenAI job workers


def test_open_opens_the_url_in_a_browser(project, monkeypatch, capsys):
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)  # the command imports webbrowser when it opens
    assert main(["ui", "tiny", "--port", str(free_port()), "--open"]) == 0
    assert opened == [capsys.readouterr().out.strip()]


def test_a_server_that_never_answers_is_stopped_with_its_log(project, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_MLFLOW_MODE", "never")
    assert main(["ui", "tiny", "--port", str(free_port()), "--ready-timeout", "1"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""  # no URL to a page that would not load
    err = printed.err.replace("\n", " ")
    assert "the MLflow server did not answer" in err and "within 1 s; stopped it" in err
    assert "fake mlflow: still migrating the database" in err  # the end of its log
    assert events("stopped")  # and it is not left running


def test_a_server_that_dies_is_one_clear_error_with_its_log(project, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_MLFLOW_MODE", "dies")
    # A long --ready-timeout: the error comes when the server exits, not when the time is up.
    assert main(["ui", "tiny", "--port", str(free_port()), "--ready-timeout", "3600"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    err = printed.err.replace("\n", " ")
    assert "the MLflow server exited with code 3 before it answered" in err
    assert "database is locked" in err


def test_sigterm_stops_the_server_and_exits_cleanly(project, monkeypatch):
    monkeypatch.setenv("FAKE_MLFLOW_MODE", "sigterm")
    assert main(["ui", "tiny", "--port", str(free_port())]) == 0
    assert events("stopped")  # droptune ui passed the stop on to the server


def test_the_users_environment_wins(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert main(["ui", "--port", str(free_port())]) == 0
    assert events("start")[0]["job_execution"] == "true"


def test_without_a_study_the_stores_only_study_is_opened(project, capsys):
    port = free_port()
    assert main(["ui", "--port", str(port)]) == 0
    assert capsys.readouterr().out.strip().startswith(f"http://127.0.0.1:{port}/#/experiments/7/runs?")
    assert project.looked_up == []


@pytest.mark.parametrize("studies", [{}, {"a": "1", "b": "2"}], ids=["none", "two"])
def test_without_a_study_and_not_exactly_one_the_ui_root_is_printed(project, capsys, studies):
    project.studies = studies
    port = free_port()
    assert main(["ui", "--port", str(port)]) == 0
    assert capsys.readouterr().out.strip() == f"http://127.0.0.1:{port}/"
    assert project.views == []


def test_a_study_file_gives_the_name_tracking_uri_and_objective(project, tmp_path, capsys):
    Path("other").mkdir()
    Path("other/m.db").touch()
    Path("s.yaml").write_text(
        "name: digits\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n"
        "tracking_uri: sqlite:///other/m.db\nobjective: {metric: val_acc, direction: maximize}\n"
    )
    project.objective = None  # the study file says it; the store is not asked
    assert main(["ui", "s.yaml", "--port", str(free_port())]) == 0
    uri = f"sqlite:///{Path('other/m.db').resolve()}"  # the study's project folder
    assert project.looked_up == [(uri, "digits")]
    assert project.views == [(uri, "7", "best_val_acc", False)]
    argv = events("start")[0]["argv"]
    assert argv[argv.index("--default-artifact-root") + 1] == (tmp_path / "other" / "artifacts").as_uri()


def test_a_study_whose_objective_is_unknown_yet_sorts_by_the_default(project):
    project.objective = None  # named, not by its file, and no best trial yet
    assert main(["ui", "tiny", "--port", str(free_port())]) == 0
    assert project.views[0][2:] == ("best_val_loss", True)


def test_when_the_view_cannot_be_saved_the_url_still_sorts(project, capsys):
    project.view_error = PermissionError("attempt to write a readonly database")
    assert main(["ui", "tiny", "--port", str(free_port())]) == 0
    assert query(capsys.readouterr().out.strip()) == {
        "orderByKey": "metrics.`best_val_loss`",
        "orderByAsc": "true",
        "workflowType": "machine_learning",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ui", "--tracking-uri", "sqlite:///none/mlflow.db"], "no MLflow store at sqlite:///none/mlflow.db"),
        (["ui", "--tracking-uri", "http://127.0.0.1:5000"], "already a tracking server"),
        (["ui", "--port", "70000"], "--port must be in 1-65535"),
        (["ui", "--ready-timeout", "0"], "--ready-timeout must be a number of seconds > 0"),
    ],
)
def test_bad_targets_are_clear_errors(project, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert events() == []  # no server started


def test_a_busy_port_is_a_clear_error(project, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port)]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err.replace("\n", " ")
    assert events() == []
