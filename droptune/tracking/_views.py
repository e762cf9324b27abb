"""What ``droptune ui`` opens: the study's experiment, its objective, and a saved MLflow view.

MLflow's runs table shows none of a run's metric or param columns by default, and its URL
can carry the sort (``orderByKey``, ``orderByAsc``) but not the columns. A *saved view* can:
MLflow 3.x keeps one per experiment tag ``mlflow.sharedViewState.<key>`` (a JSON envelope
whose ``state`` is the table's JSON state) and opens it from ``?viewStateShareKey=<key>``.
It cannot carry which parent rows are expanded or pinned (MLflow leaves those out of shared
state); sorted by a metric, the table lists every trial as a row of its own anyway, and the
``sort_key`` metric (:data:`droptune.record.SORT_KEY`) lists the parent run first. The view
also carries the chart tab (``compareRunCharts``, ``compareRunSections``): one
parallel-coordinates chart.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from droptune._layer_types import (
    LAYER_TYPES,  # not droptune.sites: that imports torch, which the MLflow writer process never needs
)
from droptune.record import RATE_PARAM, ROLE_TAG, SORT_KEY, STATE_TAG, TRIAL_TAG

__all__ = ["RUNS_VIEW", "ensure_runs_view", "study_experiments", "study_objective"]

RUNS_VIEW = "droptune"  # the saved view's key and name, as MLflow's "Views" menu lists it
_VIEW_TAG = "mlflow.sharedViewState."
# A trial's summary metrics beside best_<objective metric> (see droptune.record.run_summary).
_GAP = "best_overfit_gap"
_SUMMARY = (_GAP, "best_epoch")
_PEEK = 20  # trial runs read for the layer types (every trial of a study has the same ones)


def study_experiments(tracking_uri: str) -> dict[str, str]:
    """Name to id of the experiments in ``tracking_uri`` that hold a droptune study's parent run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = {}
    for experiment in client.search_experiments():
        studies = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'study'", max_results=1)
        if studies:
            found[experiment.name] = experiment.experiment_id
    return found


def study_objective(tracking_uri: str, experiment_id: str) -> tuple[str, bool] | None:
    """The metric that ranks a finished study's trials, and whether lower is better.

    Read back from the parent run's ``best_value`` and ``best_trial``: the best trial's
    ``best_*`` metric equal to ``best_value`` is the objective; it is minimised if no other
    complete trial has a lower one. None while the study has no best trial yet.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    parents = client.search_runs([experiment_id], f"tags.`{ROLE_TAG}` = 'study'", max_results=1)
    summary = parents[0].data.metrics if parents else {}
    if "best_value" not in summary or "best_trial" not in summary:
        return None
    best_value, best_trial = summary["best_value"], int(summary["best_trial"])
    trials = client.search_runs([experiment_id], f"tags.`{TRIAL_TAG}` = '{best_trial}'", max_results=1)
    if not trials:
        return None
    metrics = trials[0].data.metrics
    keys = [k for k in sorted(metrics) if k.startswith("best_") and k not in _SUMMARY]
    key = next((k for k in keys if math.isclose(metrics[k], best_value, rel_tol=1e-9, abs_tol=1e-12)), None)
    if key is None:
        return None
    complete = f"tags.`{STATE_TAG}` = 'complete'"
    lower = client.search_runs([experiment_id], f"metrics.`{key}` < {best_value!r} and {complete}", max_results=1)
    return key, not lower


def ensure_runs_view(tracking_uri: str, experiment_id: str, *, metric: str, ascending: bool) -> str | None:
    """Save droptune's view of the runs table in the experiment, unless one is there already.

    The view lists the parent run first, then the trials best first (the ``sort_key``
    metric, see :data:`droptune.record.SORT_KEY`; by ``metric`` for a study recorded before
    it), and shows ``metric``, the trial's gap and best epoch, its state (complete, pruned,
    failed, interrupted: the ``droptune.state`` tag), the per-layer-type rates and, on the
    parent run, the recommended ones. Its chart tab opens on a parallel-coordinates chart of
    the study's per-type rates, ``metric`` and the gap. An existing view is left alone: the
    user may have changed it.

    Args:
        tracking_uri: The MLflow store.
        experiment_id: The study's experiment.
        metric: The trials' objective metric (``best_val_loss``).
        ascending: True if the lowest value is the best.

    Returns:
        The view's key, for ``?viewStateShareKey=`` in the runs page URL; None (nothing
        saved, to be saved by a later call) while no trial has recorded its rates, since
        the chart's axes are the layer types the trials have.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if _VIEW_TAG + RUNS_VIEW in client.get_experiment(experiment_id).tags:
        return RUNS_VIEW
    trials = client.search_runs([experiment_id], f"tags.`{ROLE_TAG}` = 'trial'", max_results=_PEEK)
    types = [t for t in LAYER_TYPES if any(f"{RATE_PARAM}{t}" in run.data.params for run in trials)]
    if not types:
        return None
    columns = [f"metrics.`{m}`" for m in (metric, *_SUMMARY)] + [f"tags.`{STATE_TAG}`"]
    columns += [f"params.`{RATE_PARAM}{t}`" for t in types] + [f"params.`recommended.{t}`" for t in types]
    keyed = any(SORT_KEY in run.data.metrics for run in trials)
    order = {"orderByKey": f"metrics.`{SORT_KEY}`", "orderByAsc": True} if keyed else {
        "orderByKey": f"metrics.`{metric}`", "orderByAsc": ascending}
    state = {**order, "selectedColumns": columns, **parallel_chart([f"{RATE_PARAM}{t}" for t in types], [_GAP, metric])}
    now = int(time.time() * 1000)
    envelope = {"name": RUNS_VIEW, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    client.set_experiment_tag(experiment_id, _VIEW_TAG + RUNS_VIEW, json.dumps(envelope))
    return RUNS_VIEW


def parallel_chart(params: list[str], metrics: list[str]) -> dict[str, Any]:
    """The runs page's chart tab as MLflow 3.x keeps it in a view: one parallel-coordinates chart.

    The shape is MLflow's own (its JS bundle's ``RunsChartsParallelCardConfig``:
    ``selectedParams``, ``selectedMetrics``, ``showAllRuns``), in a section of its own:
    MLflow adds its per-metric charts below, in the "Model metrics" section, and lists
    sections other than its two own ones first. ``showAllRuns`` plots every run that has
    all the axes (the trials; the parent run has no rate), not only the table's first 10.
    Section fields ``columns`` and ``cardHeight`` are MLflow's too. MLflow colours the lines
    by the last axis: put the objective last.
    """
    # One chart as wide as the section (MLflow's default is 3 columns of 360 px high cards,
    # too narrow to read 4 to 8 axes).
    section = {"uuid": "droptune-section", "name": "droptune: rates, objective, gap", "display": True,
               "isReordered": False, "deleted": False, "isGenerated": False, "columns": 1, "cardHeight": 420}
    chart = {"uuid": "droptune-parallel", "type": "PARALLEL", "runsCountToCompare": 100,
             "metricSectionId": section["uuid"], "deleted": False, "isGenerated": False,
             "selectedParams": params, "selectedMetrics": metrics, "showAllRuns": True}
    return {"compareRunCharts": [chart], "compareRunSections": [section]}
