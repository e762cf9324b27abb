"""Where a study is recorded: trackers (MLflow, none, offloaded), chosen by registry (:func:`tracker_for`).

Every MLflow call of droptune lives in this package.
"""

from __future__ import annotations

from droptune.tracking._base import Tracker
from droptune.tracking._choose import tracker_for
from droptune.tracking._mlflow import MlflowTracker, experiment_id, experiment_names
from droptune.tracking._null import NullTracker
from droptune.tracking._offload import OffloadedTracker
from droptune.tracking._registry import TRACKERS, build_tracker, tracker_scheme
from droptune.tracking._views import RUNS_VIEW, ensure_runs_view, study_experiments, study_objective

__all__ = [
    "RUNS_VIEW",
    "TRACKERS",
    "MlflowTracker",
    "NullTracker",
    "OffloadedTracker",
    "Tracker",
    "build_tracker",
    "ensure_runs_view",
    "experiment_id",
    "experiment_names",
    "study_experiments",
    "study_objective",
    "tracker_for",
    "tracker_scheme",
]
