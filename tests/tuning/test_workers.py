"""Several worker processes on one SQLite study: exact trial counts, one MLflow child run per
trial under one parent, device assignment, the study lock, and Ctrl-C in the launcher."""

from __future__ import annotations

import os
import signal
import threading

import optuna
import pytest
from _workers_kit import (
    STORAGE,
    assert_lock_excludes,
    load_trials,
    mlflow_runs,
    poll,
    reset_mlflow_stores,
    subprocess_env,
    write_study,
)
from optuna.trial import TrialState

from droptune.cli import main
from droptune.commands._worker import worker_args
from droptune.exceptions import ConfigError
from droptune.tuning._workers import assign_devices


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reset_mlflow_stores()
    return tmp_path


def test_four_workers_finish_exactly_n_trials(in_tmp, monkeypatch):
    barrier = in_tmp / "barrier"
    barrier.mkdir()
    # Every worker holds its first trial until all 4 started one, so all 4 then race for the
    # last 2 of 6 slots: without the study lock they would overshoot.
    for name, value in subprocess_env(DROPTUNE_TEST_BARRIER=str(barrier), DROPTUNE_TEST_BARRIER_N="4").items():
        monkeypatch.setenv(name, value)
    study_file = write_study(in_tmp, name="parallel", model="_workers_kit.BarrierTinyModule", n_trials=6)

    assert main(["tune", str(study_file), "--workers", "4"]) == 0

    trials = load_trials("parallel")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert sorted(t.number for t in trials) == list(range(6))
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 4 and all(not w.endswith(f":{os.getpid()}") for w in workers)
    assert len(os.listdir(barrier)) == 4

    parents, children = mlflow_runs("parallel")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["droptune.trial_number"]) for r in children) == list(range(6))
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.status for r in children} == {"FINISHED"}
    logs = sorted(p.name for p in (in_tmp / "studies" / "logs" / "parallel").iterdir())
    assert logs == [f"worker-{i}-{os.getpid()}.log" for i in range(4)]  # this launcher's (the test process)


def test_ctrl_c_in_the_launcher_stops_the_workers_cleanly(in_tmp, monkeypatch):
    study_file = write_study(in_tmp, name="stopped", model="_workers_kit.HangingTinyModule", n_trials=4)
    for name, value in subprocess_env(DROPTUNE_TEST_HANG_AFTER="0").items():  # every trial hangs
        monkeypatch.setenv(name, value)

    def press_ctrl_c() -> None:  # once both workers hang inside a trial, as a user would
        poll(lambda: _running(in_tmp, "stopped") == (2, 2), what="2 trials training")
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    assert main(["tune", str(study_file), "--workers", "2"]) == 130
    presser.join(5)

    trials = load_trials("stopped")
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in trials)
    for trial in trials:  # the workers are gone
        pid = int(trial.user_attrs["worker"].rpartition(":")[2])
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    parents, children = mlflow_runs("stopped")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert [r.info.status for r in children] == ["FAILED", "FAILED"]
    assert all(r.data.tags["droptune.reason"].startswith("interrupted") for r in children)


def _running(folder, name: str) -> tuple[int, int]:
    """Running trials in Optuna, and running trial runs in MLflow (those reached training)."""
    if not list((folder / "studies" / "logs" / name).glob("worker-1-*.log")):
        return 0, 0  # the launcher is still creating the stores: do not race its migrations
    try:
        optuna_running = sum(t.state == TrialState.RUNNING for t in load_trials(name))
        _, children = mlflow_runs(name)
    except (KeyError, AttributeError):  # the launcher has not created the study or experiment yet
        return 0, 0
    return optuna_running, sum(r.info.status == "RUNNING" for r in children)


def test_assign_devices_round_robin_and_cap():
    assert assign_devices(5, ["0", "1"]) == ["0", "1", "0", "1", "0"]
    assert assign_devices(4, ["GPU-a", "GPU-b"], workers_per_gpu=2) == ["GPU-a", "GPU-b", "GPU-a", "GPU-b"]
    assert assign_devices(3, []) == [None, None, None]
    with pytest.raises(ConfigError, match=r"5 workers need 3 GPUs at 2 per GPU; 2 visible \(0, 1\)"):
        assign_devices(5, ["0", "1"], workers_per_gpu=2)


def test_launched_workers_get_the_same_study_and_overrides(in_tmp):
    from droptune.cli import build_parser

    study_file = write_study(in_tmp, name="forwarded")
    args = build_parser().parse_args(
        ["tune", str(study_file), "--workers", "3", "--n-trials", "9", "--storage", "sqlite:///x.db",
         "--heartbeat-interval", "2"]
    )
    assert worker_args(args) == [
        str(study_file.resolve()), "--n-trials", "9", "--storage", "sqlite:///x.db", "--heartbeat-interval", "2",
    ]


def test_worker_needs_a_prepared_study(in_tmp, capsys):
    study_file = write_study(in_tmp, name="missing")

    assert main(["worker", str(study_file)]) == 2

    message = " ".join(capsys.readouterr().err.split())
    # (the store's path is absolute, resolved against the study's folder, and may wrap in the terminal)
    assert "no Optuna storage at sqlite:///" in message and "(--storage)" in message and "Run `droptune tune" in message
    assert not (in_tmp / "studies").exists() and not (in_tmp / "mlruns").exists()  # nothing was created

    (in_tmp / "studies").mkdir()
    optuna.create_study(study_name="another", storage=STORAGE)  # the stores exist, the study does not
    (in_tmp / "mlruns").mkdir()
    (in_tmp / "mlruns" / "mlflow.db").touch()
    assert main(["worker", str(study_file)]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "no study 'missing' in sqlite:///" in message and "run `droptune tune" in message


def test_study_lock_excludes_other_holders(in_tmp):
    assert_lock_excludes(optuna.storages.RDBStorage(STORAGE.replace("studies/", "")))
