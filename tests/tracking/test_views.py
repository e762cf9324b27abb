"""droptune.tracking._views on a real MLflow store: which experiments are studies, their
objective read back from the runs, and the saved view ``droptune ui`` opens."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from droptune import tracking
from droptune.record import ROLE_TAG, STATE_TAG, TRIAL_TAG
from droptune.sites import LAYER_TYPES


def _study(client: MlflowClient, name: str, values: dict[int, float], *, metric: str, best: int) -> str:
    """An experiment as droptune's tracker leaves it: a parent run and one child run per trial."""
    exp = client.create_experiment(name)
    parent = client.create_run(exp, run_name=name, tags={ROLE_TAG: "study"}).info.run_id
    for number, value in values.items():
        tags = {ROLE_TAG: "trial", TRIAL_TAG: str(number), STATE_TAG: "complete", "mlflow.parentRunId": parent}
        child = client.create_run(exp, run_name=f"trial-{number}", tags=tags).info.run_id
        client.log_metric(child, metric, value)
        client.log_metric(child, "best_overfit_gap", value / 10)  # a summary metric, never the objective
        client.log_metric(child, "best_epoch", 3)
        client.log_param(child, "rate.dense", 0.5)
    client.log_metric(parent, "best_value", values[best])
    client.log_metric(parent, "best_trial", best)
    return exp


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlruns') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    ids = {
        "losses": _study(client, "losses", {0: 0.7, 1: 0.4, 2: 0.9}, metric="best_val_loss", best=1),
        "accuracy": _study(client, "accuracy", {0: 0.8, 1: 0.95, 2: 0.6}, metric="best_val_acc", best=1),
        "other": client.create_experiment("other"),  # someone else's experiment: no study run
        "running": client.create_experiment("running"),
    }
    client.create_run(ids["running"], run_name="running", tags={ROLE_TAG: "study"})  # no best trial yet
    return uri, ids


def test_study_experiments_are_those_holding_a_study_run(store):
    uri, ids = store
    assert tracking.study_experiments(uri) == {n: ids[n] for n in ("losses", "accuracy", "running")}


def test_the_objective_and_its_direction_are_read_back(store):
    uri, ids = store
    assert tracking.study_objective(uri, ids["losses"]) == ("best_val_loss", True)
    assert tracking.study_objective(uri, ids["accuracy"]) == ("best_val_acc", False)
    assert tracking.study_objective(uri, ids["running"]) is None


def test_the_view_sorts_by_the_objective_and_shows_droptunes_columns(store):
    uri, ids = store
    client = MlflowClient(tracking_uri=uri)
    assert tracking.ensure_runs_view(uri, ids["accuracy"], metric="best_val_acc", ascending=False) == "droptune"
    envelope = json.loads(client.get_experiment(ids["accuracy"]).tags["mlflow.sharedViewState.droptune"])
    assert envelope["name"] == "droptune" and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    assert state["orderByKey"] == "metrics.`best_val_acc`" and state["orderByAsc"] is False
    assert state["selectedColumns"][:3] == ["metrics.`best_val_acc`", "metrics.`best_overfit_gap`", "metrics.`best_epoch`"]
    assert state["selectedColumns"][3] == "tags.`droptune.state`"  # complete, pruned, failed or interrupted
    rates = [f"params.`rate.{t}`" for t in LAYER_TYPES]
    assert state["selectedColumns"][4:] == rates + [f"params.`recommended.{t}`" for t in LAYER_TYPES]


def test_an_existing_view_is_left_alone(store):
    uri, ids = store
    client = MlflowClient(tracking_uri=uri)
    client.set_experiment_tag(ids["losses"], "mlflow.sharedViewState.droptune", "the user's own")
    assert tracking.ensure_runs_view(uri, ids["losses"], metric="best_val_loss", ascending=True) == "droptune"
    assert client.get_experiment(ids["losses"]).tags["mlflow.sharedViewState.droptune"] == "the user's own"
