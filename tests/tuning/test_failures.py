"""A trial that runs out of CUDA memory, gets a NaN loss or is interrupted ends failed with its
reason recorded, in Optuna and in MLflow, and the study goes on (or resumes)."""

from __future__ import annotations

import gc
import signal

import pytest
from _workers_kit import (
    FITS,
    FaultyTinyModule,
    load_trials,
    mlflow_runs,
    reset_mlflow_stores,
    write_study,
)
from optuna.trial import TrialState

from droptune.cli import main


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reset_mlflow_stores()
    FITS.clear()
    FaultyTinyModule.INSTANCES.clear()
    yield tmp_path
    FITS.clear()


def test_oom_and_nan_fail_their_trials_and_the_study_goes_on(in_tmp):
    study_file = write_study(in_tmp, name="faulty", model="_workers_kit.FaultyTinyModule", n_trials=3)

    assert main(["tune", str(study_file)]) == 0

    trials = load_trials("faulty")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL] + [TrialState.COMPLETE] * 3
    oom, nan = trials[0], trials[1]
    assert oom.user_attrs["fail_reason"].startswith("CUDA out of memory")
    assert "non-finite" in nan.user_attrs["fail_reason"] and "loss" in nan.user_attrs["fail_reason"]
    # The OOM trial's model (and the tensor it held) was released before the next trial.
    gc.collect()
    assert FaultyTinyModule.INSTANCES[0]() is None

    parents, children = mlflow_runs("faulty")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    by_number = {int(r.data.tags["droptune.trial_number"]): r for r in children}
    assert sorted(by_number) == [0, 1, 2, 3, 4]
    for number, trial in ((0, oom), (1, nan)):
        run = by_number[number]
        assert run.info.status == "FAILED"
        assert run.data.tags["droptune.state"] == "failed"
        assert run.data.tags["droptune.reason"] == trial.user_attrs["fail_reason"]
    assert all(by_number[n].info.status == "FINISHED" for n in (2, 3, 4))


def test_ctrl_c_fails_the_running_trial_and_the_same_command_resumes(in_tmp):
    study_file = write_study(in_tmp, name="interrupted", model="_workers_kit.InterruptingTinyModule", n_trials=3)
    previous = signal.getsignal(signal.SIGINT)
    try:
        assert main(["tune", str(study_file)]) == 130
        # Lightning ignores SIGINT after catching Ctrl-C; droptune gives the next Ctrl-C back.
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)

    trials = load_trials("interrupted")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"].startswith("interrupted")
    parents, children = mlflow_runs("interrupted")
    assert len(parents) == 1 and parents[0].info.status == "KILLED"
    failed = [r for r in children if r.data.tags["droptune.trial_number"] == "1"]
    assert [r.info.status for r in failed] == ["FAILED"]
    assert failed[0].data.tags["droptune.reason"].startswith("interrupted")
    assert failed[0].data.tags["droptune.state"] == "interrupted"  # told apart from a trial that failed by itself

    assert main(["tune", str(study_file)]) == 0  # the same command resumes

    trials = load_trials("interrupted")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL] + [TrialState.COMPLETE] * 2
    again, children = mlflow_runs("interrupted")
    assert [p.info.run_id for p in again] == [parents[0].info.run_id]
    assert again[0].info.status == "FINISHED"
    assert len(children) == 4 and all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
