"""Where a study is recorded: trackers (MLflow, none), the stores, and the trial recorder.

Every MLflow call of droptune lives in this package.
"""

from __future__ import annotations

from droptune.tracking._base import Tracker
from droptune.tracking._bookkeeper import Bookkeeper
from droptune.tracking._mlflow import MlflowTracker, experiment_id, experiment_names
from droptune.tracking._null import NullTracker
from droptune.tracking._stores import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    artifact_root,
    enable_wal,
    make_storage,
    prepare_store,
    sqlite_path,
)

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_TRACKING_URI",
    "Bookkeeper",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "artifact_root",
    "enable_wal",
    "experiment_id",
    "experiment_names",
    "make_storage",
    "prepare_store",
    "sqlite_path",
]
