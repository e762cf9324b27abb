"""Experiment tracking (MLflow): study parent runs, trial child runs, per-epoch metrics."""

from __future__ import annotations

from droptune.tracking._callback import TrackingCallback
from droptune.tracking._mlflow import MlflowTracker, artifact_root, prepare_store

__all__ = ["MlflowTracker", "TrackingCallback", "artifact_root", "prepare_store"]
