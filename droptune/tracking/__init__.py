"""Where a study is recorded: trackers (MLflow, none, offloaded).

Every MLflow call of droptune lives in this package.
"""

from __future__ import annotations

from droptune.tracking._base import Tracker
from droptune.tracking._mlflow import MlflowTracker, experiment_id, experiment_names
from droptune.tracking._null import NullTracker
from droptune.tracking._offload import OffloadedTracker
from droptune.tracking._views import RUNS_VIEW, ensure_runs_view, study_experiments, study_objective

__all__ = [
    "RUNS_VIEW",
    "MlflowTracker",
    "NullTracker",
    "OffloadedTracker",
    "Tracker",
    "ensure_runs_view",
    "experiment_id",
    "experiment_names",
    "study_experiments",
    "study_objective",
]
