"""A full disk under the SQLite study store mid-study: one message (not an exception chain), exit
code 2, no trial and no run left RUNNING by the process that saw it, and the same command resumes.

SQLite's own failure is injected where SQLite raises it, under SQLAlchemy and Optuna: a cursor
execute on the study database raises ``sqlite3.OperationalError("database or disk is full")``
(a tmpfs that fills up cannot be mounted in most test environments; ``test_bad_inputs`` uses one
where it can, for the start of a study).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from _reliability_kit import VALID
from _workers_kit import load_trials, mlflow_runs, reset_mlflow_stores
from optuna.trial import TrialState

import droptune.cli
from droptune.cli import main

STUDY = VALID.replace("n_trials: 2", "n_trials: 4")


class FullDisk:
    """Fails the ``fail_at``-th write that completes a trial in the study database, like a disk that
    filled up just then (and was freed again: the writes that end the study go through)."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.seen, self.failed = fail_at, 0, 0

    def __call__(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not str(conn.engine.url.database or "").endswith("droptune.db"):
            return  # MLflow's database: another file, and its disk is not the point here
        if statement.lstrip().upper().startswith("UPDATE TRIALS SET STATE") and "COMPLETE" in str(parameters):
            self.seen += 1
            if self.seen == self.fail_at:
                self.failed += 1
                raise sqlite3.OperationalError("database or disk is full")


@pytest.fixture
def full_disk() -> Iterator[FullDisk]:
    found = FullDisk(fail_at=2)
    sqlalchemy.event.listen(sqlalchemy.Engine, "before_cursor_execute", found)
    try:
        yield found
    finally:
        sqlalchemy.event.remove(sqlalchemy.Engine, "before_cursor_execute", found)


def _states(name: str) -> dict[TrialState, int]:
    found: dict[TrialState, int] = {}
    for trial in load_trials(name):
        found[trial.state] = found.get(trial.state, 0) + 1
    return found


def test_a_full_disk_mid_study_stops_with_one_message_and_leaves_nothing_running(
    project: Path, full_disk: FullDisk, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "study.yaml").write_text(STUDY)
    monkeypatch.setattr(droptune.cli.err, "width", 100_000)  # one message, one line
    reset_mlflow_stores()

    code = main(["tune", "study.yaml"])
    err = capsys.readouterr().err
    assert full_disk.failed == 1  # the injected failure happened (at the second trial's end)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: SQLite could not write: the disk holding {project}/mlruns/mlflow.db, {project}/studies/droptune.db "
        "is full (database or disk is full). What was written before is kept; free some space and run the same "
        "command to resume."
    ], err
    # The trial whose end could not be written says why, in SQLite's words, not Optuna's guess.
    assert "warning: trial 1 failed: a SQLite store could not be written (database or disk is full); redone on " \
        "resume" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 8, err  # start lines, trial lines, the warning, the error: no 339-line chain
    states = _states("tiny")
    assert states == {TrialState.COMPLETE: 1, TrialState.FAIL: 1}, states  # the unwritten end: FAIL, not RUNNING
    parents, children = mlflow_runs("tiny")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert sorted(c.info.status for c in children) == ["FAILED", "FINISHED"]

    # The disk has room again: the same command finishes the study.
    code = main(["tune", "study.yaml"])
    err = capsys.readouterr().err
    assert code == 0, err
    states = _states("tiny")
    assert states == {TrialState.COMPLETE: 4, TrialState.FAIL: 1}, states
    parents, children = mlflow_runs("tiny")
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert sorted(c.info.status for c in children) == ["FAILED"] + ["FINISHED"] * 4
