"""A damaged SQLite store (truncated, or garbage mid-file): each command says which file and
how to repair it, exits 2, and changes nothing; an intact copy of the store still reads back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from _reliability_kit import VALID, snapshot
from _workers_kit import reset_mlflow_stores

import droptune.cli
from droptune.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {
    "tune": ["tune", "study.yaml"],
    "recommend": ["recommend", "study.yaml"],
    "report": ["report", "study.yaml", "-o", "report.html"],
    "export": ["export", "study.yaml", "-o", "best.yaml"],
}


@pytest.fixture
def refused(project, capsys, monkeypatch):  # type: ignore[no-untyped-def]
    """As conftest's ``refused``, but SQLite's own side files (``-wal``, ``-shm``), which opening a
    database in write-ahead-log mode creates, may change: every other file must not."""
    monkeypatch.setattr(droptune.cli.err, "width", 100_000)

    def files() -> dict[str, str]:
        return {k: v for k, v in snapshot(project.parent).items() if not k.endswith(("-wal", "-shm"))}

    def check(argv: list[str], pattern: str) -> str:
        before = files()
        code = main(argv)
        message = capsys.readouterr().err
        assert code == 2, message
        assert re.search(pattern, message), f"{pattern!r} not in:\n{message}"
        assert "Traceback" not in message
        assert files() == before, "a refused command changed the disk"
        return message

    return check


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding a finished 2-trial study in SQLite (made once, copied by each test)."""
    folder = tmp_path_factory.mktemp("sqlite")
    (folder / "study.yaml").write_text(VALID)
    # In another process: its databases are closed (write-ahead logs folded in) when it exits.
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "droptune", "tune", "study.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=300, check=False, env=dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr
    return folder


def truncate(path: Path) -> str:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    # Told by the header's page count, or (pages still in the write-ahead log) by SQLite.
    return r"truncated: \d+ bytes of the \d+ its header gives|database disk image is malformed"


def garbage(path: Path) -> str:
    with path.open("r+b") as handle:  # pages 4-7 overwritten; the header (page 1) intact
        handle.seek(3 * 4096)
        handle.write(b"\xde\xad" * 2 * 4096)
    return r"database disk image is malformed"


@pytest.mark.parametrize("damage", [truncate, garbage])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_damaged_study_database_is_named_with_its_repair(finished, project, refused, damage, command):
    shutil.copytree(finished, project, dirs_exist_ok=True)
    database = project / "studies" / "droptune.db"
    intact = database.read_bytes()
    trials = len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{database}").trials)
    assert trials == 2
    what = damage(database)
    reset_mlflow_stores()
    refused(  # exit 2, no traceback, nothing on disk changed
        COMMANDS[command],
        rf"error: the SQLite database {database} is damaged \(({what})\); droptune cannot read it\. Repair it with "
        rf'`sqlite3 {database} "\.recover" \| sqlite3 {project}/studies/droptune-fixed\.db`.* or restore droptune\.db from a backup',
    )
    database.write_bytes(intact)  # restored from a backup: the study reads back, every trial in it
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{database}").trials) == trials


def test_a_truncated_mlflow_database_is_named_too(finished, project, refused):
    shutil.copytree(finished, project, dirs_exist_ok=True)
    database = project / "mlruns" / "mlflow.db"
    truncate(database)
    reset_mlflow_stores()
    refused(COMMANDS["tune"], rf"error: the SQLite database {database} is damaged \((truncated: |database disk image is malformed)")


def test_a_full_disk_under_sqlite_is_one_message(finished, project, refused, monkeypatch):
    import sqlite3

    import sqlalchemy.exc

    shutil.copytree(finished, project, dirs_exist_ok=True)

    def full(*args: object, **kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(optuna, "load_study", full)
    reset_mlflow_stores()
    refused(COMMANDS["recommend"], rf"error: SQLite could not write: the disk holding {project}/studies/droptune\.db "
            r"is full \(database or disk is full\)\. What was written before is kept; free some space")
