"""Studies on an Optuna journal file (``storage: journal:///...``): the engine, its workers,
its lock, its reaping of dead workers and its store checks work there as on SQLite."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import optuna
import pytest
from _workers_kit import assert_lock_excludes, mlflow_runs, reset_mlflow_stores, subprocess_env, write_study
from optuna.trial import TrialState

from droptune.cli import main
from droptune.config import load_config
from droptune.exceptions import ConfigError, StudyError
from droptune.preflight import check_storage_url
from droptune.record import PROCESS_ATTR, WORKER_ATTR
from droptune.stores._create import journal_storage, open_storage
from droptune.tuning import prepare_study, run_worker
from droptune.tuning._heartbeat import process_key

JOURNAL = "journal:///studies/droptune.journal"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reset_mlflow_stores()
    return tmp_path


def trials_of(name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(JOURNAL)).get_trials()


def test_four_workers_on_a_journal_file_finish_exactly_n_trials(in_tmp, monkeypatch):
    barrier = in_tmp / "barrier"
    barrier.mkdir()
    # As on SQLite: all 4 workers hold their first trial until each has one, then race for
    # the last 2 of 6 slots; the journal's study lock must keep them to 6.
    for name, value in subprocess_env(DROPTUNE_TEST_BARRIER=str(barrier), DROPTUNE_TEST_BARRIER_N="4").items():
        monkeypatch.setenv(name, value)
    study_file = write_study(in_tmp, name="journaled", model="_workers_kit.BarrierTinyModule", n_trials=6,
                             extra=f"storage: {JOURNAL}\n")

    assert main(["tune", str(study_file), "--workers", "4"]) == 0

    trials = trials_of("journaled")
    assert sorted(t.number for t in trials) == list(range(6))
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert len({t.user_attrs[WORKER_ATTR] for t in trials}) == 4
    assert not (in_tmp / "studies" / "droptune.db").exists()  # the journal, not a SQLite file
    assert (in_tmp / "studies" / "logs" / "journaled").is_dir()  # logs beside the journal
    parents, children = mlflow_runs("journaled")
    assert len(parents) == 1 and len(children) == 6
    # the commands that read a study read it from the journal too
    assert main(["export", str(study_file), "-o", "best.yaml"]) == 0
    assert (in_tmp / "best.yaml").is_file()


def test_a_dead_workers_trial_on_a_journal_is_failed_and_redone(in_tmp):
    study_file = write_study(in_tmp, name="orphan", n_trials=1, extra=f"storage: {JOURNAL}\n")
    spec = load_config(study_file)
    study = prepare_study(spec).study
    assert isinstance(study._storage, optuna.storages.JournalStorage)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    # The journal has no heartbeats: the trial of a process of this machine that is gone is found by that.
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{finished.pid}")
    trial.set_user_attr(PROCESS_ATTR, f"{process_key().rpartition(':')[0]}:1")

    run_worker(spec, study=study)

    trials = trials_of("orphan")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "died (its process is gone)" in trials[0].user_attrs["fail_reason"]


def test_study_lock_on_a_journal_excludes_other_holders(tmp_path):
    assert_lock_excludes(journal_storage(tmp_path / "locked.journal"))


def test_journal_urls_are_checked_before_anything_is_written(tmp_path):
    check_storage_url(f"journal:///{tmp_path}/new/droptune.journal")  # a folder it can be made in: fine
    assert not (tmp_path / "new").exists()  # checked, not created
    database = tmp_path / "droptune.db"
    optuna.create_study(storage=f"sqlite:///{database}")
    with pytest.raises(StudyError, match=r"exists but is not an Optuna journal"):
        check_storage_url(f"journal:///{database}")
    with pytest.raises(StudyError, match=r"is a folder, not a journal file"):
        check_storage_url(f"journal:///{tmp_path}")
    with pytest.raises(ConfigError, match=r"names no file; expected e.g. journal:///studies/droptune.journal"):
        check_storage_url("journal:///")
    journal = tmp_path / "kept.journal"
    optuna.create_study(storage=journal_storage(journal), study_name="kept")
    assert json.loads(journal.read_text().splitlines()[0])  # what the check recognises: JSON lines
    check_storage_url(f"journal:///{journal}")


def test_a_failed_first_start_leaves_no_journal_behind(in_tmp):
    from droptune.stores._create import create_stores_locked
    from droptune.tuning._lifecycle import _prepare  # the creation step, past the pre-flight

    study_file = write_study(in_tmp, name="broken", extra=f"storage: {JOURNAL}\n")
    (in_tmp / "blocker").write_text("in the way of the MLflow folder")
    # The journal is created, then the MLflow store cannot be: the whole start is undone.
    spec = load_config(study_file, {"tracking_uri": "sqlite:///blocker/mlruns/mlflow.db"})
    with pytest.raises(OSError), create_stores_locked(spec):
        _prepare(spec, None)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["blocker", "broken.yaml"]  # no studies/, no journal
