"""Two "machines" share one study: a real PostgreSQL server holds the Optuna storage and a real
``mlflow server`` the tracking; each machine works in its own folder with no local store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import optuna
import pytest
from _workers_kit import FITS, assert_lock_excludes, subprocess_env, write_study
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from droptune.cli import main
from droptune.config import load_config
from droptune.stores._study_lock import study_lock
from droptune.tuning import prepare_study

pytestmark = pytest.mark.slow

N_TRIALS = 6


def test_two_machines_share_a_study_through_postgres_and_mlflow_server(
    tmp_path, monkeypatch, postgres_url, mlflow_server
):
    tracking_uri, artifacts = mlflow_server
    head, other, barrier = tmp_path / "head", tmp_path / "other", tmp_path / "barrier"
    for folder in (head, other, barrier):
        folder.mkdir()
    study_file = write_study(head, name="shared", model="_workers_kit.BarrierTinyModule", n_trials=N_TRIALS)
    shutil.copy(study_file, other)  # each machine has its own copy of the study file
    # Both machines hold their first trial until the other started one: both provably work
    # on the study at the same time.
    for name, value in subprocess_env(DROPTUNE_TEST_BARRIER=str(barrier), DROPTUNE_TEST_BARRIER_N="2").items():
        monkeypatch.setenv(name, value)
    FITS.clear()
    shared = ["--storage", postgres_url, "--tracking-uri", tracking_uri, "--heartbeat-interval", "2"]
    monkeypatch.chdir(head)  # the head machine is this process

    prepare_study(load_config("shared.yaml", {"storage": postgres_url, "tracking_uri": tracking_uri}))
    worker = subprocess.Popen([sys.executable, "-m", "droptune", "worker", "shared.yaml", *shared], cwd=other,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert main(["tune", "shared.yaml", *shared]) == 0
        output = worker.communicate(timeout=300)[0].decode()
    finally:
        worker.kill()
    assert worker.returncode == 0, output[-3000:]

    trials = optuna.load_study(study_name="shared", storage=postgres_url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    pids = {int(t.user_attrs["worker"].rpartition(":")[2]) for t in trials}
    assert pids == {os.getpid(), worker.pid}

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("droptune.role") == "study"]
    children = [r for r in runs if r.data.tags.get("droptune.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["droptune.trial_number"]) for r in children) == list(range(N_TRIALS))
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.status for r in children} == {"FINISHED"}
    # Artifacts went through the server to its --artifacts-destination, not to the machines.
    assert "shared.yaml" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert list(artifacts.rglob("shared.yaml"))
    for folder in (head, other):
        assert not (folder / "studies").exists() and not (folder / "mlruns").exists()


def test_advisory_lock_excludes_other_sessions(postgres_url):
    storage = optuna.storages.RDBStorage(postgres_url)
    assert_lock_excludes(storage)  # another pooled connection: another session
    with study_lock(storage, "other study"), study_lock(storage, "locked"):  # keys are per study
        pass
