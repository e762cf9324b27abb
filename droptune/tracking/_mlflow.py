"""MLflow tracking: one parent run per study, one nested child run per trial.

Everything goes through ``MlflowClient`` with explicit run ids, never MLflow's global
"active run": worker processes and packed populations log to many runs at once.
Optuna-integration's ``MLflowCallback`` (deprecated, final value only) and Lightning's
``MLFlowLogger`` (global step, not epoch) do not give per-epoch gap curves, hence this.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from droptune.config import absolute_sqlite_url
from droptune.exceptions import ConfigError

log = logging.getLogger(__name__)

ROLE_TAG = "droptune.role"
STUDY_TAG = "droptune.study"
TRIAL_TAG = "droptune.trial_number"
STATE_TAG = "droptune.state"
REASON_TAG = "droptune.reason"

# Optuna trial state -> MLflow run status.
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}


def artifact_root(tracking_uri: str) -> str | None:
    """Where artifacts go: ``artifacts/`` beside a SQLite store; the server's choice otherwise."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent.resolve() / "artifacts").as_uri()
    return None


def prepare_store(tracking_uri: str) -> None:
    """Create the folder of a SQLite store so MLflow can create the database in it."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    elif tracking_uri.startswith("file:") or "://" not in tracking_uri:
        raise ConfigError(
            f"tracking_uri {tracking_uri!r}: MLflow 3 refuses the old file store; use "
            "'sqlite:///mlruns/mlflow.db' (the default) or an http(s):// tracking server."
        )


class MlflowTracker:
    """Log a study and its trials to MLflow.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///mlruns/mlflow.db``, ``http://...``).
        experiment: Experiment name (the study name).
    """

    def __init__(self, *, tracking_uri: str, experiment: str) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        tracking_uri = absolute_sqlite_url(tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        prepare_store(tracking_uri)
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment_id()

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        root = artifact_root(self.tracking_uri)
        location = f"{root}/{_safe(self.experiment)}" if root else None
        try:
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except Exception:  # created meanwhile by another process
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def study_run(self, run_id: str | None = None) -> str:
        """Return the study's parent run id, reopening ``run_id`` or creating a new run."""
        if run_id is not None:
            try:
                run = self.client.get_run(run_id)
            except Exception:  # a tracking store that was wiped: start a new parent
                run = None
            if run is not None and run.info.experiment_id == self.experiment_id:
                if run.info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
                return run_id
        run = self.client.create_run(
            self.experiment_id,
            run_name=self.experiment,
            tags={ROLE_TAG: "study", STUDY_TAG: self.experiment},
        )
        return run.info.run_id

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, Any]) -> str:
        """Open the child run of trial ``number`` and log its params (rates, layer types)."""
        from mlflow.entities import Param

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number}",
            tags={
                "mlflow.parentRunId": parent_run_id,
                ROLE_TAG: "trial",
                STUDY_TAG: self.experiment,
                TRIAL_TAG: str(number),
                STATE_TAG: "running",
            },
        )
        batch = [Param(str(k), str(v)) for k, v in params.items()]
        for start in range(0, len(batch), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run.info.run_id, params=batch[start : start + 100])
        return run.info.run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log one epoch's metrics with step = epoch, in one batch."""
        self.client.log_batch(run_id, metrics=_metrics({k: v for k, v in metrics.items() if k != "epoch"}, epoch))

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        """Close a child run: ``state`` is ``complete``, ``pruned`` or ``failed``."""
        from mlflow.entities import RunTag

        tags = [RunTag(STATE_TAG, state)] + ([RunTag(REASON_TAG, reason[:5000])] if reason else [])
        self.client.log_batch(run_id, metrics=_metrics(summary or {}), tags=tags)
        self.client.set_terminated(run_id, status=RUN_STATUS[state])

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local file into a run's artifacts."""
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Log the study's summary metrics (best value, counts) on the parent run."""
        self.client.log_batch(run_id, metrics=_metrics(metrics))

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        """Close the parent run."""
        self.client.set_terminated(run_id, status=status)

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str:
        """URL of this experiment's runs table in ``droptune ui``."""
        return f"http://{host}:{port}/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"


def _metrics(values: Mapping[str, float], step: int = 0) -> list[Any]:
    """MLflow metric entities for one ``log_batch`` call, all stamped now at ``step``."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in values.items()]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
