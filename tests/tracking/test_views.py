"""droptune.tracking._views on a real MLflow store: which experiments are studies, their
objective read back from the runs, and the saved view ``droptune ui`` opens."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from droptune import tracking
from droptune.record import ROLE_TAG, STATE_TAG, TRIAL_TAG, parent_sort_key


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
        client.log_metric(child, "sort_key", value if metric.endswith("loss") else -value)
        client.log_param(child, "rate.dense", 0.5)
        client.log_param(child, "rate.input", 0.1)
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


def _view_state(client: MlflowClient, experiment_id: str) -> dict:
    envelope = json.loads(client.get_experiment(experiment_id).tags["mlflow.sharedViewState.droptune"])
    assert envelope["name"] == "droptune" and isinstance(envelope["createdAt"], int)
    return json.loads(envelope["state"])


def test_the_view_sorts_parent_first_and_shows_droptunes_columns(store):
    uri, ids = store
    client = MlflowClient(tracking_uri=uri)
    assert tracking.ensure_runs_view(uri, ids["accuracy"], metric="best_val_acc", ascending=False) == "droptune"
    state = _view_state(client, ids["accuracy"])
    assert state["orderByKey"] == "metrics.`sort_key`" and state["orderByAsc"] is True
    assert state["selectedColumns"][:3] == ["metrics.`best_val_acc`", "metrics.`best_overfit_gap`", "metrics.`best_epoch`"]
    assert state["selectedColumns"][3] == "tags.`droptune.state`"  # complete, pruned, failed or interrupted
    # The layer types the trials have, in droptune's order, and nothing for the others.
    rates = ["params.`rate.input`", "params.`rate.dense`"]
    assert state["selectedColumns"][4:] == rates + ["params.`recommended.input`", "params.`recommended.dense`"]


def test_the_views_chart_tab_is_a_parallel_coordinates_chart_of_rates_gap_and_objective(store):
    uri, ids = store
    client = MlflowClient(tracking_uri=uri)
    tracking.ensure_runs_view(uri, ids["accuracy"], metric="best_val_acc", ascending=False)
    state = _view_state(client, ids["accuracy"])
    (chart,) = state["compareRunCharts"]
    (section,) = state["compareRunSections"]
    # The fields MLflow's UI reads for a parallel-coordinates card (RunsChartsParallelCardConfig).
    assert chart["type"] == "PARALLEL" and chart["showAllRuns"] is True and chart["deleted"] is False
    assert chart["selectedParams"] == ["rate.input", "rate.dense"]
    assert chart["selectedMetrics"] == ["best_overfit_gap", "best_val_acc"]  # the last axis colours the lines
    assert chart["metricSectionId"] == section["uuid"] and section["display"] is True
    # Every axis is one the trial runs have (MLflow plots only runs that have all of them).
    trials = client.search_runs([ids["accuracy"]], "tags.`droptune.role` = 'trial'")
    for run in trials:
        assert set(chart["selectedParams"]) <= set(run.data.params)
        assert set(chart["selectedMetrics"]) <= set(run.data.metrics)


def test_a_study_recorded_without_sort_key_is_sorted_by_its_objective(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    old = client.create_experiment("older")  # its trial has best_val_loss but no sort_key
    parent = client.create_run(old, tags={ROLE_TAG: "study"}).info.run_id
    child = client.create_run(old, tags={ROLE_TAG: "trial", TRIAL_TAG: "0", "mlflow.parentRunId": parent}).info.run_id
    client.log_metric(child, "best_val_loss", 0.5)
    client.log_param(child, "rate.dense", 0.5)
    assert tracking.ensure_runs_view(uri, old, metric="best_val_loss", ascending=True) == "droptune"
    state = _view_state(client, old)
    assert state["orderByKey"] == "metrics.`best_val_loss`" and state["orderByAsc"] is True


def test_no_view_is_saved_before_a_trial_has_recorded_its_rates(store):
    uri, ids = store
    client = MlflowClient(tracking_uri=uri)
    assert tracking.ensure_runs_view(uri, ids["running"], metric="best_val_loss", ascending=True) is None
    assert "mlflow.sharedViewState.droptune" not in client.get_experiment(ids["running"]).tags


def test_the_parent_sort_key_lists_the_parent_run_first_under_the_views_sort(tmp_path):
    # MLflow's own search, with the saved view's order: the parent, then the best trial.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    for direction, values in (("minimize", {0: 0.7, 1: 0.4, 2: 0.9}), ("maximize", {0: 0.8, 1: 0.95, 2: 0.6})):
        metric = "best_val_loss" if direction == "minimize" else "best_val_acc"
        exp = _study(client, direction, values, metric=metric, best=1)
        parent = client.search_runs([exp], f"tags.`{ROLE_TAG}` = 'study'")[0].info.run_id
        client.log_metric(parent, metric, values[1])  # ties with the best trial: not enough alone
        client.log_metric(parent, "sort_key", parent_sort_key(values.values(), direction))
        tracking.ensure_runs_view(uri, exp, metric=metric, ascending=direction == "minimize")
        state = _view_state(client, exp)
        order = f"{state['orderByKey']} {'ASC' if state['orderByAsc'] else 'DESC'}"
        names = [r.info.run_name for r in client.search_runs([exp], order_by=[order])]
        assert names == [direction, "trial-1", "trial-0", "trial-2"]  # best first in both directions
        # Under the objective alone, the tie puts the best trial (started later) above the parent.
        objective = f"metrics.`{metric}` {'ASC' if direction == 'minimize' else 'DESC'}"
        assert [r.info.run_name for r in client.search_runs([exp], order_by=[objective])][:2] == ["trial-1", direction]


def test_an_existing_view_is_left_alone(store):
    uri, ids = store
    client = MlflowClient(tracking_uri=uri)
    client.set_experiment_tag(ids["losses"], "mlflow.sharedViewState.droptune", "the user's own")
    assert tracking.ensure_runs_view(uri, ids["losses"], metric="best_val_loss", ascending=True) == "droptune"
    assert client.get_experiment(ids["losses"]).tags["mlflow.sharedViewState.droptune"] == "the user's own"
