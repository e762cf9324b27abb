"""MLflow tracking: one parent run per study, one nested child run per trial.

Everything goes through ``MlflowClient`` with explicit run ids, never MLflow's global
"active run": worker processes and packed populations log to many runs at once.
Optuna-integration's ``MLflowCallback`` (deprecated, final value only) and Lightning's
``MLFlowLogger`` (global step, not epoch) do not give per-epoch gap curves, hence this.

Each MLflow call is a database transaction (milliseconds on SQLite), so a child run's params
and per-epoch metrics are buffered and written together: when the run ends, and at least every
:data:`FLUSH_S` seconds while it trains. A run is opened at once (it shows as RUNNING), and
nothing buffered is lost on any way a run ends that the process survives: ``end_trial``
and ``flush`` write it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping

from droptune.record import (
    PARENT_TAG,
    REASON_LIMIT,
    REASON_TAG,
    ROLE_TAG,
    RUN_STATUS,
    STATE_TAG,
    STUDY_TAG,
    TRIAL_TAG,
    run_state,
)
from droptune.stores._damage import note
from droptune.stores._storage import artifact_root, enable_wal, fast_commits, prepare_store
from droptune.stores._urls import absolute_sqlite_url, sqlite_file

log = logging.getLogger(__name__)

NOTE_TAG = "mlflow.note.content"  # a run's description, as MLflow's UI shows and edits it
FLUSH_S = 10.0  # a training run's buffered metrics reach MLflow at least this often
# MLflow's limits for one log_batch call.
MAX_PARAMS, MAX_ENTRIES = 100, 1000


class MlflowTracker:
    """Log a study and its trials to MLflow (implements :class:`~droptune.tracking.Tracker`).

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///mlruns/mlflow.db``, ``http://...``).
        experiment: Experiment name (the study name).
    """

    keeps_artifacts = True

    def __init__(self, *, tracking_uri: str, experiment: str) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        tracking_uri = absolute_sqlite_url(tracking_uri)
        self.tracking_uri = tracking_uri
        note(sqlite_file(tracking_uri))  # a damaged file is named, not a traceback
        self.experiment = experiment
        prepare_store(tracking_uri)
        fast_commits()
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = self._experiment_id()
        enable_wal(tracking_uri)
        self._lock = threading.Lock()
        self._buffers: dict[str, _Buffer] = {}
        self._database = sqlite_file(tracking_uri)
        self._database_gone = False

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
        if run_id is not None and self.has_study_run(run_id):
            if self.client.get_run(run_id).info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
            return run_id
        run = self.client.create_run(
            self.experiment_id, run_name=self.experiment, tags={ROLE_TAG: "study", STUDY_TAG: self.experiment}
        )
        return run.info.run_id

    def has_study_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is a run of this experiment in this store."""
        try:
            run = self.client.get_run(run_id)
        except Exception:  # no such run here (a wiped or another store)
            return False
        return run.info.experiment_id == self.experiment_id

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        """Open the child run of trial ``number``; its params are written with its first flush."""
        tags = {PARENT_TAG: parent_run_id, ROLE_TAG: "trial", STUDY_TAG: self.experiment}
        tags.update({TRIAL_TAG: str(number), STATE_TAG: "running"})
        run = self.client.create_run(self.experiment_id, run_name=f"trial-{number}", tags=tags)
        with self._lock:
            self._buffers[run.info.run_id] = _Buffer(params=dict(params))
        return run.info.run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """Buffer one epoch's metrics (step = epoch); write the run's buffer if it is old."""
        with self._lock:
            buffer = self._buffers.setdefault(run_id, _Buffer())
            buffer.metrics.update({(k, epoch): float(v) for k, v in metrics.items() if k != "epoch"})
            due = time.monotonic() - buffer.since >= FLUSH_S
        if due:
            self._write(run_id)

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        """Write the run's buffer with its summary and state, then close it."""
        self._close_run(run_id, state, summary=summary, reason=reason)

    def _close_run(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        # Every way a child run ends in this process (OffloadedTracker overrides end_trial, not this).
        tags = {STATE_TAG: run_state(state, reason), **({REASON_TAG: reason[:REASON_LIMIT]} if reason else {})}
        self._write(run_id, summary=summary or {}, tags=tags)
        self.client.set_terminated(run_id, status=RUN_STATUS[state])

    def flush(self) -> None:
        """Write every run's buffer."""
        with self._lock:
            runs = list(self._buffers)
        for run_id in runs:
            self._write(run_id)

    def _check_database(self) -> None:
        """Warn once if the SQLite database was deleted: SQLite would go on writing to the unlinked file."""
        if self._database is None or self._database_gone or self._database.exists():
            return
        self._database_gone = True
        log.warning(
            "the MLflow database %s was deleted while the study ran: what is logged from now on goes to the "
            "deleted file and is lost when this process ends (the Optuna study keeps every trial). Restore it "
            "from a backup, or let the study finish and rerun with a new tracking store.",
            self._database,
        )

    def _write(self, run_id: str, *, summary: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        self._check_database()

        with self._lock:
            buffer = self._buffers.pop(run_id, _Buffer())
            if summary is None:  # still training: keep a fresh buffer for the next epochs
                self._buffers[run_id] = _Buffer()
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for (k, step), v in buffer.metrics.items()]
        metrics += [Metric(k, float(v), now, 0) for k, v in (summary or {}).items()]
        params = [Param(k, v) for k, v in buffer.params.items()]
        run_tags = [RunTag(k, v) for k, v in (tags or {}).items()]
        while metrics or params or run_tags:  # MLflow's per-call limits
            batch_params, params = params[:MAX_PARAMS], params[MAX_PARAMS:]
            batch_tags, run_tags = run_tags[: MAX_ENTRIES - len(batch_params)], run_tags[MAX_ENTRIES - len(batch_params) :]
            room = MAX_ENTRIES - len(batch_params) - len(batch_tags)
            batch_metrics, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        """Close the child run of trial ``number`` FAILED with ``reason``, if it is still open."""
        query = (
            f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{TRIAL_TAG}` = '{number}' "
            "and attributes.status = 'RUNNING'"
        )
        try:
            for run in self.client.search_runs([self.experiment_id], filter_string=query):
                self._close_run(run.info.run_id, "failed", reason=reason)
        except Exception:  # tracking must not stop the study; the run stays visibly RUNNING
            log.warning("could not close the MLflow run of trial %d", number, exc_info=True)

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        """Close the open child runs of ended trials with the trial's state (after a kill -9
        that took the queued end of a run with it); return how many were closed."""
        query = f"tags.`{PARENT_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
        closed = 0
        for run in self.client.search_runs([self.experiment_id], filter_string=query, max_results=50_000):
            number = run.data.tags.get(TRIAL_TAG, "")
            state = states.get(int(number)) if number.isdigit() else None
            if state is None:  # still running (or not a trial's run)
                continue
            reason = "its worker was stopped before the run was closed; the study has the trial's result"
            self._close_run(run.info.run_id, state, reason=reason)
            closed += 1
        return closed

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local file into a run's artifacts."""
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Log the study's summary metrics (best value, counts) on the parent run."""
        self._write(run_id, summary=metrics)

    def describe_study(self, run_id: str, *, params: Mapping[str, str], note: str, report: str | None = None) -> None:
        """Log ``params`` on the parent run and set its description (``mlflow.note.content``).

        With ``report``, a link to that artifact follows the note's first paragraph.

        MLflow never changes a logged parameter: when a resumed study's recommendation has
        moved, the first values stay and the description (rewritten each time, like the
        ``recommended.*`` metrics) says so and holds the current ones.
        """
        from mlflow.entities import Param

        logged = self.client.get_run(run_id).data.params
        stale = {k: logged[k] for k, v in params.items() if k in logged and logged[k] != v}
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        if new:
            self.client.log_batch(run_id, params=new)  # one per layer type: well under MAX_PARAMS
        if stale:
            note += (
                f"\n\nThe parameters {', '.join(sorted(stale))} still hold the values first logged "
                "(MLflow never changes a parameter); the figures above and the `recommended.*` metrics are current."
            )
        if report is not None:  # after the first paragraph: above the fold of MLflow's "Show more"
            experiment = self.client.get_run(run_id).info.experiment_id
            link = f"#/experiments/{experiment}/runs/{run_id}/artifactPath/{report}"
            head, _, rest = note.partition("\n\n")
            said = f"The whole story (plots, every trial, which overfit): [{report}]({link}), an artifact of this run."
            note = "\n\n".join(part for part in (head, said, rest) if part)
        self.client.set_tag(run_id, NOTE_TAG, note)

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        """Write what is buffered, then close the parent run."""
        self.flush()
        self.client.set_terminated(run_id, status=status)

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        """URL of this experiment's runs table in ``droptune ui``."""
        return f"http://{host}:{port}/#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"


def experiment_id(tracking_uri: str, name: str) -> str | None:
    """The id of MLflow experiment ``name`` in ``tracking_uri`` (None if there is none); creates nothing."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(name)
    return None if found is None else found.experiment_id


def experiment_names(tracking_uri: str) -> list[str]:
    """The names of the experiments in ``tracking_uri``, MLflow's ``Default`` left out."""
    from mlflow.tracking import MlflowClient

    return sorted(e.name for e in MlflowClient(tracking_uri=tracking_uri).search_experiments() if e.name != "Default")


class _Buffer:
    """What a run has been given and MLflow has not yet written."""

    def __init__(self, params: dict[str, str] | None = None) -> None:
        self.params = params or {}
        self.metrics: dict[tuple[str, int], float] = {}
        self.since = time.monotonic()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)



