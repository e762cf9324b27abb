"""Trackers: the MLflow tracker buffers a run's params and metrics and loses none of them; the
null tracker keeps the same contract; the recorder closes every run however a trial ends."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from droptune.config import ObjectiveSpec
from droptune.record import TrialResult
from droptune.tracking import MlflowTracker, NullTracker, Tracker
from droptune.tuning._recorder import TrialRecorder


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.parametrize("tracker_class", [MlflowTracker, NullTracker], ids=["mlflow", "null"])
def test_both_trackers_implement_the_interface(tracker_class, tracking_uri) -> None:  # type: ignore[no-untyped-def]
    tracker = tracker_class(tracking_uri=tracking_uri, experiment="conformance") if tracker_class is MlflowTracker else tracker_class()
    assert isinstance(tracker, Tracker)
    parent = tracker.study_run()
    assert tracker.has_study_run(parent)
    run = tracker.start_trial(parent, 0, {"rate.fc": "0.5"})
    tracker.log_epoch(run, 0, {"val_loss": 1.0, "epoch": 0.0})
    tracker.end_trial(run, "complete", summary={"best_val_loss": 1.0})
    tracker.describe_study(parent, params={"recommended.dense": "0.23"}, note="a study", report="report.html")
    tracker.end_study(parent)


def test_epochs_are_buffered_then_written_once_the_run_ends(tracking_uri: str) -> None:
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="buffered")
    client = MlflowClient(tracking_uri=tracking_uri)
    parent = tracker.study_run()
    run = tracker.start_trial(parent, 3, {"rate.fc": "0.25", "type.fc": "dense"})
    assert client.get_run(run).info.status == "RUNNING"  # open at once: a dead worker's run is found
    for epoch in range(3):
        tracker.log_epoch(run, epoch, {"epoch": float(epoch), "val_loss": 1.0 - epoch / 10, "overfit_gap": 0.1})
    assert _history(client, run, "val_loss") == []  # still in the buffer
    tracker.end_trial(run, "pruned", summary={"best_val_loss": 0.8}, reason="pruned at epoch 2")
    finished = client.get_run(run)
    assert finished.info.status == "KILLED"
    assert finished.data.params == {"rate.fc": "0.25", "type.fc": "dense"}
    assert finished.data.tags["droptune.state"] == "pruned" and finished.data.tags["droptune.reason"] == "pruned at epoch 2"
    assert _history(client, run, "val_loss") == [(0, 1.0), (1, pytest.approx(0.9)), (2, pytest.approx(0.8))]
    assert "epoch" not in finished.data.metrics and finished.data.metrics["best_val_loss"] == 0.8


def test_flush_writes_a_running_trials_epochs(tracking_uri: str) -> None:
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="flushed")
    client = MlflowClient(tracking_uri=tracking_uri)
    run = tracker.start_trial(tracker.study_run(), 0, {})
    tracker.log_epoch(run, 0, {"val_loss": 2.0})
    tracker.flush()
    assert _history(client, run, "val_loss") == [(0, 2.0)]
    assert client.get_run(run).info.status == "RUNNING"
    tracker.log_epoch(run, 1, {"val_loss": 1.5})
    tracker.end_trial(run, "complete")
    assert _history(client, run, "val_loss") == [(0, 2.0), (1, 1.5)]


def test_more_than_a_batch_of_metrics_and_params_all_land(tracking_uri: str) -> None:
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="large")
    client = MlflowClient(tracking_uri=tracking_uri)
    params = {f"rate.site{i}": "0.1" for i in range(150)}  # MLflow takes 100 params per call
    run = tracker.start_trial(tracker.study_run(), 0, params)
    for epoch in range(250):  # 1000 metrics, MLflow's limit per call, with the summary above it
        tracker.log_epoch(run, epoch, {"a": 1.0, "b": 2.0, "c": 3.0, "d": float(epoch)})
    tracker.end_trial(run, "complete", summary={"best_a": 1.0})
    assert len(client.get_run(run).data.params) == 150
    assert len(_history(client, run, "d")) == 250


def test_an_aborted_trial_ends_failed_with_its_epochs_written(tracking_uri: str, tmp_path: Path) -> None:
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="aborted")
    client = MlflowClient(tracking_uri=tracking_uri)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    recorder = TrialRecorder(study=study, tracker=tracker, parent_run_id=tracker.study_run(), objective=ObjectiveSpec())
    done, interrupted = study.ask(), study.ask()
    for trial in (done, interrupted):
        recorder.open(trial, {"fc": 0.5}, {"fc": "dense"})
        recorder.epoch(trial, 0, {"epoch": 0.0, "val_loss": 1.0, "train_loss_eval": 0.8, "overfit_gap": 0.2})
    recorder.close(done, TrialResult("complete", 1.0, history=[{"epoch": 0.0, "val_loss": 1.0, "overfit_gap": 0.2}]))
    recorder.abort([interrupted], "interrupted by Ctrl-C or SIGINT (KeyboardInterrupt)")
    recorder.shutdown()
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"].startswith("interrupted")
    assert trials[1].intermediate_values == {0: 1.0}
    found = client.search_runs([tracker.experiment_id], filter_string="tags.`droptune.role` = 'trial'")
    runs = {int(r.data.tags["droptune.trial_number"]): r for r in found}
    assert runs[0].info.status == "FINISHED" and runs[1].info.status == "FAILED"
    assert _history(client, runs[1].info.run_id, "val_loss") == [(0, 1.0)]  # flushed on the way out


def test_a_trial_aborted_before_its_run_opened_still_gets_a_failed_run(tracking_uri: str, tmp_path: Path) -> None:
    # SIGTERM while the trial's model is still being built: the trial was asked, its run not yet opened.
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="aborted-early")
    client = MlflowClient(tracking_uri=tracking_uri)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    recorder = TrialRecorder(study=study, tracker=tracker, parent_run_id=tracker.study_run(), objective=ObjectiveSpec())
    recorder.abort([study.ask()], "terminated by SIGTERM")
    recorder.shutdown()
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.FAIL]
    (run,) = client.search_runs([tracker.experiment_id], filter_string="tags.`droptune.role` = 'trial'")
    assert run.info.status == "FAILED"
    assert run.data.tags["droptune.trial_number"] == "0" and run.data.tags["droptune.reason"] == "terminated by SIGTERM"


@pytest.mark.parametrize(
    ("reason", "state"),
    [
        ("interrupted by Ctrl-C or SIGINT (KeyboardInterrupt)", "interrupted"),
        ("terminated by SIGTERM (the job scheduler or `kill` stopped this worker); redone on resume", "interrupted"),
        ("CUDA out of memory", "failed"),
    ],
)
def test_a_trial_failed_by_ctrl_c_or_sigterm_is_tagged_interrupted(tracking_uri: str, reason: str, state: str) -> None:
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment="states")
    run = tracker.start_trial(tracker.study_run(), 0, {})
    tracker.end_trial(run, "failed", reason=reason)
    finished = MlflowClient(tracking_uri=tracking_uri).get_run(run)
    assert finished.info.status == "FAILED" and finished.data.tags["droptune.state"] == state


@pytest.mark.parametrize(
    ("reason", "warned"),
    [("interrupted by Ctrl-C or SIGINT (KeyboardInterrupt)", False), ("RuntimeError: CUDA out of memory", True)],
)
def test_ctrl_c_warns_about_no_trial_of_its_own(tmp_path: Path, caplog, reason: str, warned: bool) -> None:
    # Ctrl-C's final line ("interrupted: ...") says what happened once; a study-level error
    # still names each trial it failed.
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    recorder = TrialRecorder(study=study, tracker=NullTracker(), parent_run_id="p", objective=ObjectiveSpec())
    trial = study.ask()
    recorder.open(trial, {"fc": 0.5}, {"fc": "dense"})
    with caplog.at_level("DEBUG", logger="droptune.tuning._recorder"):
        recorder.abort([trial], reason)
        recorder.shutdown()
    failed = [r for r in caplog.records if r.getMessage().startswith("trial 0 failed")]
    assert [r.levelname for r in failed] == (["WARNING"] if warned else ["DEBUG"])
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
