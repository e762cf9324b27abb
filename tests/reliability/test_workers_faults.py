"""Faults of parallel workers, with real processes: kill -9 of the `droptune tune --workers 2`
launcher (its workers live on, orphaned), and 8 `droptune worker` processes on one PostgreSQL
study of 64 trials."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_faults
from _reliability_kit import VALID, write
from _workers_kit import load_trials, mlflow_runs, poll
from optuna.trial import FrozenTrial, TrialState
from test_faults import ARRAY, WAIT_S, assert_closed_and_matching, env, logs, stores

from droptune.cli import main
from droptune.config import load_config
from droptune.stores._lock import store_lock
from droptune.stores._urls import sqlite_file
from droptune.tuning import prepare_study
from droptune.tuning._heartbeat import is_dead_local

# The PostgreSQL server fixture of the end-to-end tests, loaded under another module name.
_spec = importlib.util.spec_from_file_location("_e2e_servers", Path(__file__).resolve().parents[1] / "e2e" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_servers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_servers)
postgres_url = _servers.postgres_url
spawn = test_faults.spawn  # processes started in the project, killed if the test fails


def _running(storage: str) -> list[FrozenTrial]:
    """RUNNING trials that say which process runs them (none while the stores are being created)."""
    with store_lock(storage):  # never open the database while droptune creates it
        if not sqlite_file(storage).exists():
            return []
        try:
            trials = load_trials("tiny", storage)
        except KeyError:  # the study is not created yet
            return []
    return [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs]


def _both_running(storage: str) -> list[FrozenTrial] | None:
    """The 2 RUNNING trials, once there are 2."""
    running = _running(storage)
    return running if len(running) == 2 else None


def _workers_in(folder: Path) -> list[int]:
    """Processes of `droptune worker` working in ``folder`` (their working directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            here = Path(os.readlink(entry / "cwd")) == folder.resolve()
        except OSError:  # gone meanwhile, or another user's
            continue
        if here and b"droptune" in command and b"worker" in command:
            found.append(int(entry.name))
    return found


def _alive(trial: FrozenTrial) -> bool:
    """Whether the process that started ``trial`` still runs (its pid and start time: never a reused pid)."""
    return not is_dead_local(trial)


@pytest.mark.slow  # real droptune processes: tens of seconds on 2 cores
def test_kill_9_of_the_launcher_loses_nothing_and_the_same_command_finishes(project, spawn, monkeypatch):
    n_trials = 6
    write(project, ARRAY.replace("n_trials: 2", f"n_trials: {n_trials}"))
    storage, tracking = stores(project)
    barrier = project.parent / "barrier"
    barrier.mkdir()
    # Both workers' first trials train at once, and stay there until the test releases them.
    both = {"DROPTUNE_TEST_BARRIER": str(barrier), "DROPTUNE_TEST_BARRIER_N": "2", "DROPTUNE_TEST_HOLD": "1"}
    launcher = spawn([sys.executable, "-m", "droptune", "tune", "study.yaml", "--workers", "2"], "tune", **both)
    orphans: list[FrozenTrial] = []
    try:
        orphans = poll(lambda: _both_running(storage), timeout=WAIT_S, what="2 trials training")
        assert not [t for t in orphans if t.user_attrs["worker"].endswith(f":{launcher.pid}")]  # the workers' trials
        launcher.send_signal(signal.SIGKILL)  # the launcher only: its workers run in sessions of their own
        assert launcher.wait(timeout=WAIT_S) == -signal.SIGKILL
        assert all(_alive(t) for t in orphans), "the workers died with their launcher: nothing is tested"
        (barrier / "release").touch()  # the orphans finish their trials
        parents, _ = mlflow_runs("tiny", tracking)
        assert [p.info.status for p in parents] == ["RUNNING"]  # nobody closed it

        # What a user does next: the same command, while the orphaned workers still train.
        for name, value in env().items():
            monkeypatch.setenv(name, value)
        assert main(["tune", "study.yaml", "--workers", "2"]) == 0, logs(project)
        poll(lambda: not any(_alive(t) for t in orphans), timeout=WAIT_S, what="the orphaned workers to exit")

        trials = assert_closed_and_matching("tiny", storage, tracking)
        assert sorted(t.number for t in trials) == list(range(len(trials)))
        assert [t.state for t in trials] == [TrialState.COMPLETE] * n_trials  # exactly n_trials, none lost or redone
        finished_by = {t.user_attrs["worker"] for t in trials}
        assert {t.user_attrs["worker"] for t in orphans} <= finished_by  # the orphans' trials were kept
        parents, _ = mlflow_runs("tiny", tracking)
        assert [p.info.status for p in parents] == ["FINISHED"]
    finally:  # orphans are not our children: no worker started in the project outlives the test
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in _workers_in(project):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow  # 8 workers, each importing torch, Lightning and MLflow (~8 CPU-s): 80 s on 2 cores beside another job
def test_eight_workers_on_postgres_run_64_trials_none_lost_or_duplicated(project, spawn, postgres_url):
    n_trials, n_workers = 64, 8
    name = "eight-workers"  # the server lives for the session: a study name of this test's own
    write(project, VALID.replace("name: tiny", f"name: {name}").replace("n_trials: 2", f"n_trials: {n_trials}").replace(
        "{class_path: droptune.testing.TinyDataModule}",
        "{class_path: droptune.testing.TinyDataModule, init_args: {n_train: 32, n_val: 16}}",
    ))
    tracking = f"sqlite:///{project.resolve()}/mlruns/mlflow.db"
    # As `droptune tune` does before its workers start: pre-flight, stores, parent run.
    lifecycle = prepare_study(load_config(project / "study.yaml", {"storage": postgres_url, "tracking_uri": tracking}))
    command = [sys.executable, "-m", "droptune", "worker", "study.yaml", "--storage", postgres_url,
               "--tracking-uri", tracking, "--quiet"]
    workers = [spawn(command, f"worker-{i}") for i in range(n_workers)]
    codes = [w.wait(timeout=WAIT_S) for w in workers]
    assert codes == [0] * n_workers, logs(project)

    trials = assert_closed_and_matching(name, postgres_url, tracking)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n_trials
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert len({t.user_attrs["worker"] for t in trials}) > 1  # shared, not one worker doing it all
    parents, children = mlflow_runs(name, tracking)  # closing the parent run (the report) is not timed here
    assert [p.info.run_id for p in parents] == [lifecycle.parent_run_id]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {lifecycle.parent_run_id}


def test_checking_a_sqlite_store_keeps_this_processs_locks_on_it(tmp_path):
    """The pre-flight of a second start in one process (a notebook, `main` twice) must not drop
    the POSIX locks its open connections hold: closing any descriptor of the file would, and a
    SQLite database written meanwhile by another process is then corrupted."""
    import sqlite3

    from droptune.preflight import check_storage_url

    database = tmp_path / "held.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    try:
        check_storage_url(f"sqlite:///{database}")
        other = subprocess.run(
            [sys.executable, "-c", f"import sqlite3; sqlite3.connect({str(database)!r}, timeout=0).execute('BEGIN IMMEDIATE')"],
            capture_output=True, text=True, timeout=WAIT_S, check=False,
        )
        assert "database is locked" in other.stderr, "another process got the write lock this one holds"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
