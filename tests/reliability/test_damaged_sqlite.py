"""A damaged SQLite store (truncated, or garbage mid-file): each command says which file and
how to repair it, exits 2, and changes nothing; an intact copy of the store still reads back."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from _reliability_kit import VALID
from _workers_kit import reset_mlflow_stores

from droptune.cli import main

COMMANDS = {
    "tune": ["tune", "study.yaml"],
    "recommend": ["recommend", "study.yaml"],
    "report": ["report", "study.yaml", "-o", "report.html"],
    "export": ["export", "study.yaml", "-o", "best.yaml"],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding a finished 2-trial study in SQLite (made once, copied by each test)."""
    folder = tmp_path_factory.mktemp("sqlite")
    (folder / "study.yaml").write_text(VALID)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        reset_mlflow_stores()
        assert main(["tune", "study.yaml"]) == 0
    return folder


def truncate(path: Path) -> str:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return r"truncated: \d+ bytes of the \d+ its header gives"


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
        rf"error: the SQLite database {database} is damaged \({what}\); droptune cannot read it\. Repair it with "
        rf'`sqlite3 {database} "\.recover" \| sqlite3 {project}/studies/droptune-fixed\.db`.* or restore droptune\.db from a backup',
    )
    database.write_bytes(intact)  # restored from a backup: the study reads back, every trial in it
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{database}").trials) == trials


def test_a_truncated_mlflow_database_is_named_too(finished, project, refused):
    shutil.copytree(finished, project, dirs_exist_ok=True)
    database = project / "mlruns" / "mlflow.db"
    truncate(database)
    reset_mlflow_stores()
    refused(COMMANDS["tune"], rf"error: the SQLite database {database} is damaged \(truncated: ")
