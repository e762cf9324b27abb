"""Where a study is recorded: trackers (MLflow, none), the stores, and the trial recorder.

Every MLflow call of droptune lives in this package.
"""

from __future__ import annotations

from droptune.tracking._base import Tracker
from droptune.tracking._bookkeeper import Bookkeeper
from droptune.tracking._mlflow import MlflowTracker, experiment_id, experiment_names
from droptune.tracking._null import NullTracker
from droptune.tracking._offload import OffloadedTracker
from droptune.tracking._stores import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    artifact_root,
    enable_wal,
    make_storage,
    prepare_store,
)
from droptune.tracking._views import RUNS_VIEW, ensure_runs_view, study_experiments, study_objective

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_TRACKING_URI",
    "RUNS_VIEW",
    "Bookkeeper",
    "MlflowTracker",
    "NullTracker",
    "OffloadedTracker",
    "Tracker",
    "artifact_root",
    "enable_wal",
    "ensure_runs_view",
    "experiment_id",
    "experiment_names",
    "make_storage",
    "prepare_store",
    "study_experiments",
    "study_objective",
]
