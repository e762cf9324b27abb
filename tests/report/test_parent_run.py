"""report_study: the recommendation and plots logged to the study's MLflow parent run."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import optuna
import pytest

from droptune import testing
from droptune.recommend import recommend
from droptune.report import report_study
from droptune.tracking import MlflowTracker, NullTracker

TYPES = {"input_dropout": "input", "fc.1": "dense", "fc.4": "dense"}


@pytest.fixture
def make_study():
    return lambda name="s", direction="minimize": optuna.create_study(study_name=name, direction=direction)


@pytest.fixture
def add_trial():
    return functools.partial(testing.add_trial, layer_types=TYPES)


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"


def parent_run(tracking_uri: str, name: str) -> tuple[MlflowTracker, str]:
    tracker = MlflowTracker(tracking_uri=tracking_uri, experiment=name)
    return tracker, tracker.study_run()


def artifacts(tracker: MlflowTracker, run_id: str) -> set[str]:
    top = tracker.client.list_artifacts(run_id)
    names = {a.path for a in top if not a.is_dir}
    for folder in (a.path for a in top if a.is_dir):
        names |= {a.path for a in tracker.client.list_artifacts(run_id, folder)}
    return names


def test_report_logs_recommendations_json_and_plots(tracking_uri, make_study, add_trial, tmp_path):
    study = make_study(name="reported")
    add_trial(study, {"input_dropout": 0.1, "fc.1": 0.5, "fc.4": 0.5}, 1.0, prior=True)
    for i in range(1, 6):
        add_trial(study, {"input_dropout": 0.02 * i, "fc.1": 0.1 * i, "fc.4": 0.05 * i}, 1.0 - 0.02 * i)
    tracker, run = parent_run(tracking_uri, "reported")
    items = report_study(study, tracker, run, metric="val_loss")
    assert items == recommend(study)
    assert artifacts(tracker, run) == {
        "recommendations.json",
        "recommendation_notes.txt",
        "report.html",
        "plots/rates_by_layer_type.png",
        "plots/optimization_history.png",
        "plots/importance.png",
        "plots/gap_curves.png",
    }
    local = Path(tracker.client.download_artifacts(run, "recommendations.json", str(tmp_path)))
    assert json.loads(local.read_text()) == [r.to_dict() for r in items]
    tracker.flush()
    metrics = tracker.client.get_run(run).data.metrics
    dense = next(r for r in items if r.layer_type == "dense")
    assert metrics["recommended.dense"] == pytest.approx(dense.recommended)
    assert metrics["recommended.dense.n_trials"] == 3 and metrics["recommended.input.prior"] == 0.1
    page = Path(tracker.client.download_artifacts(run, "report.html", str(tmp_path))).read_text()
    assert "droptune report: reported" in page and "from the best 3 of 6 complete trials" in page
    # the caveats go to the notes: here, that a type's rate is the mean of its sites (granularity site)
    note = Path(tracker.client.download_artifacts(run, "recommendation_notes.txt", str(tmp_path))).read_text()
    assert "a type's rate is the mean of its sites' rates (best trial: dense: fc.1 0.500, fc.4 0.250)" in note


def test_too_few_trials_logs_a_note_and_does_not_raise(tracking_uri, make_study, add_trial, tmp_path):
    study = make_study(name="young")
    add_trial(study, {"input_dropout": 0.1, "fc.1": 0.5, "fc.4": 0.5}, 1.0, prior=True)
    tracker, run = parent_run(tracking_uri, "young")
    assert report_study(study, tracker, run) is None
    names = artifacts(tracker, run)
    assert "recommendations.json" not in names
    assert {"recommendation_notes.txt", "report.html", "plots/optimization_history.png", "plots/gap_curves.png"} <= names
    note = Path(tracker.client.download_artifacts(run, "recommendation_notes.txt", str(tmp_path))).read_text()
    assert "too few complete trials" in note and "'young' has 1" in note


def test_a_failing_tracker_does_not_fail_the_study(make_study, add_trial, caplog):
    study = make_study(name="offline")
    for i in range(3):
        add_trial(study, {"input_dropout": 0.1 * i, "fc.1": 0.5, "fc.4": 0.5}, float(i))

    class Down:
        keeps_artifacts = True

        def log_artifact(self, *args, **kwargs):
            raise ConnectionError("tracking server down")

    items = report_study(study, Down(), "run-id")  # type: ignore[arg-type]
    assert [r.layer_type for r in items] == ["input", "dense"]
    assert "tracking server down" in caplog.text


def test_no_report_is_built_for_a_tracker_that_keeps_no_files(make_study, add_trial, monkeypatch):
    study = make_study(name="untracked")
    for i in range(3):
        add_trial(study, {"input_dropout": 0.1 * i, "fc.1": 0.5, "fc.4": 0.5}, float(i))
    built: list[str] = []
    monkeypatch.setattr("droptune.report._parent_run.save_plots", lambda *a, **k: built.append("plots") or ([], []))

    class Drops(NullTracker):
        def log_artifact(self, *args, **kwargs):
            built.append("artifact")

    items = report_study(study, Drops(), "run-id")
    assert [r.layer_type for r in items] == ["input", "dense"]  # the recommendation is still computed
    assert built == []  # but no plot, page or file is made for a tracker that would drop them


def test_the_parent_run_gets_rounded_parameters_and_a_description_linking_the_report(
    tracking_uri, make_study, add_trial
):
    study = make_study(name="described")
    for i in range(1, 7):
        add_trial(study, {"input_dropout": 0.02 * i, "fc.1": 0.1 * i, "fc.4": 0.05 * i}, 1.0 - 0.02 * i)
    tracker, run = parent_run(tracking_uri, "described")
    items = report_study(study, tracker, run)
    data = tracker.client.get_run(run).data
    dense = next(r for r in items if r.layer_type == "dense")
    assert data.params == {f"recommended.{r.layer_type}": f"{r.recommended:.2f}" for r in items}
    assert data.params["recommended.dense"] == f"{dense.recommended:.2f}" and len(data.params["recommended.dense"]) == 4
    note = data.tags["mlflow.note.content"]
    assert "droptune study **described**: 6 complete, 0 pruned, 0 failed trials." in note
    assert f"| dense | **{dense.recommended:.2f}** |" in note and "best trial (5)" in note
    experiment = tracker.client.get_run(run).info.experiment_id
    link = f"[report.html](#/experiments/{experiment}/runs/{run}/artifactPath/report.html)"
    assert link in note and note.index(link) < note.index("| layer type")  # shown before MLflow's "Show more"


def test_a_resumed_study_keeps_its_first_parameters_and_says_so(tracking_uri, make_study, add_trial):
    study = make_study(name="resumed")
    for i in range(1, 4):
        add_trial(study, {"input_dropout": 0.1, "fc.1": 0.1 * i, "fc.4": 0.1 * i}, 1.0 - 0.02 * i)
    tracker, run = parent_run(tracking_uri, "resumed")
    report_study(study, tracker, run)
    first = dict(tracker.client.get_run(run).data.params)
    for i in range(4, 9):  # better trials at higher dense rates: the recommendation moves
        add_trial(study, {"input_dropout": 0.1, "fc.1": 0.1 * i, "fc.4": 0.1 * i}, 0.5 - 0.02 * i)
    report_study(study, tracker, run)  # does not raise: MLflow refuses a changed parameter
    data = tracker.client.get_run(run).data
    assert data.params == first
    assert "The parameters recommended.dense still hold the values first logged" in data.tags["mlflow.note.content"]
    assert data.metrics["recommended.dense"] == pytest.approx(0.7)  # the metrics are current
