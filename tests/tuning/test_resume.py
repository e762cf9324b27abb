"""A worker that dies mid-trial: its trial is failed and retried once with the same rates,
on this machine at once (its process is gone), elsewhere when its heartbeat stops."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys

import optuna
import pytest
from _workers_kit import (
    load_trials,
    mlflow_runs,
    poll,
    reset_mlflow_stores,
    subprocess_env,
    write_study,
)
from optuna.trial import TrialState

from droptune.cli import main
from droptune.config import load_config
from droptune.record import PROCESS_ATTR, WORKER_ATTR
from droptune.tuning import prepare_study, run_worker, space_of
from droptune.tuning._build import build, model_sites
from droptune.tuning._heartbeat import Heartbeat, is_dead_local, process_key

RETRIED = "failed_trial"  # system attr set by optuna's RetryHeartbeatStaleTrialCallback


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reset_mlflow_stores()
    return tmp_path


def snapshot(trial: optuna.trial.FrozenTrial) -> tuple:
    return (trial.number, trial.state, trial.params, trial.values, trial.user_attrs, trial.datetime_complete)


def test_sigkilled_worker_trial_is_failed_and_retried_with_the_same_rates(in_tmp):
    study_file = write_study(in_tmp, name="killed", model="_workers_kit.HangingTinyModule", n_trials=4)
    prepare_study(load_config(study_file))
    worker = subprocess.Popen(
        [sys.executable, "-m", "droptune", "worker", str(study_file), "--heartbeat-interval", "1"],
        env=subprocess_env(DROPTUNE_TEST_HANG_AFTER="2"),  # its third trial hangs in training
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: _training(in_tmp, "killed"), what="the worker's third trial to reach training")
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    trials = load_trials("killed")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]
    before, killed = [snapshot(t) for t in trials[:2]], trials[2]

    assert main(["tune", str(study_file), "--heartbeat-interval", "1"]) == 0  # the same command resumes

    trials = load_trials("killed")
    assert [snapshot(t) for t in trials[:2]] == before  # finished trials untouched
    dead = trials[2]
    assert dead.state == TrialState.FAIL
    assert dead.user_attrs["fail_reason"] == f"worker {killed.user_attrs[WORKER_ATTR]} died (its process is gone)"
    assert trials[3].system_attrs[RETRIED] == 2 and trials[3].state == TrialState.COMPLETE
    assert trials[3].params == killed.params and trials[3].user_attrs["rates"] == killed.user_attrs["rates"]
    assert "fail_reason" not in trials[3].user_attrs
    assert [t.state for t in trials[3:]] == [TrialState.COMPLETE] * 2  # 4 finished, as asked

    parents, children = mlflow_runs("killed")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    (dead_run,) = [r for r in children if r.data.tags["droptune.trial_number"] == "2"]
    assert dead_run.info.status == "FAILED" and dead_run.data.tags["droptune.reason"] == dead.user_attrs["fail_reason"]
    assert len(children) == 5


def _training(folder, name: str) -> bool:
    """Whether the third trial runs and its MLflow run is open (the worker reached the hanging step)."""
    running = [t for t in load_trials(name) if t.state == TrialState.RUNNING and t.number == 2]
    return bool(running) and any(r.info.status == "RUNNING" for r in mlflow_runs(name)[1])


def test_a_remote_worker_that_stops_beating_loses_its_trial(in_tmp):
    study_file = write_study(in_tmp, name="remote", n_trials=1)
    spec = load_config(study_file, {"heartbeat_interval": 1})
    study = prepare_study(spec).study
    # A worker on another machine starts the prior trial, beats once, then vanishes.
    trial = study.ask()
    model, data = build(spec)
    rates = space_of(spec).suggest(trial, space_of(spec).select(model_sites(spec, model, data)))
    trial.set_user_attr(WORKER_ATTR, "elsewhere:4242")
    trial.set_user_attr(PROCESS_ATTR, "pid:[1]:1")
    study._storage.record_heartbeat(trial._trial_id)

    run_worker(spec, study=study)  # waits for the grace period (4 beats), then redoes the trial

    trials = load_trials("remote")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[0].user_attrs["fail_reason"] == "worker elsewhere:4242 stopped beating (heartbeat lost)"
    assert trials[1].system_attrs[RETRIED] == 0
    assert trials[1].user_attrs["rates"] == rates and trials[1].user_attrs["prior"] is True


def test_heartbeat_thread_beats_until_the_trial_ends(in_tmp):
    storage = optuna.storages.RDBStorage("sqlite:///beats.db", heartbeat_interval=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()

    def beat() -> str | None:
        with sqlite3.connect(in_tmp / "beats.db") as db:
            row = db.execute("SELECT heartbeat FROM trial_heartbeats WHERE trial_id = ?", (trial._trial_id,)).fetchone()
        return row[0] if row else None

    with Heartbeat(storage, 1) as heartbeat:
        heartbeat.add(trial._trial_id)
        first = beat()
        assert first is not None  # beating from the start
        poll(lambda: beat() != first, timeout=10, what="a second heartbeat")
    assert not heartbeat._thread.is_alive()


def test_dead_local_workers_are_recognised():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    here = socket.gethostname()

    def trial(worker: str, process: str | None = process_key()) -> optuna.trial.FrozenTrial:
        attrs = {WORKER_ATTR: worker} if process is None else {WORKER_ATTR: worker, PROCESS_ATTR: process}
        return optuna.trial.create_trial(state=TrialState.FAIL, user_attrs=attrs)

    namespace = process_key().rpartition(":")[0]
    assert is_dead_local(trial(f"{here}:{finished.pid}", f"{namespace}:1"))  # gone
    assert not is_dead_local(trial(f"{here}:1", f"{namespace}:{_start_time_of(1)}"))  # alive (pid 1)
    assert is_dead_local(trial(f"{here}:1", f"{namespace}:999999999"))  # pid reused by another process
    assert not is_dead_local(trial(f"elsewhere:{finished.pid}"))  # another machine: the heartbeat decides
    assert not is_dead_local(trial(f"{here}:{finished.pid}", "pid:[0]:1"))  # another container
    assert not is_dead_local(trial(f"{here}:{finished.pid}", None))  # did not say which process


def _start_time_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[19]
