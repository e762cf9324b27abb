"""The tracker interface: where a study's parent run and its trials' child runs are logged.

A tracker is a small contract (a ``typing.Protocol``): :class:`~droptune.tracking.MlflowTracker`
logs to MLflow, :class:`~droptune.tracking.NullTracker` logs nothing. Run ids are strings the
tracker chooses. Calls may be buffered or queued (per-epoch metrics land in batches; a packed
study's trial runs are written by another process), but everything a run was given is written
by the time :meth:`Tracker.flush` or :meth:`Tracker.end_study` returns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class Tracker(Protocol):
    """Log a study (one parent run) and its trials (one child run each)."""

    #: Whether :meth:`log_artifact` keeps files: when False, nobody builds a report or plots for it.
    keeps_artifacts: bool

    def study_run(self, run_id: str | None = None) -> str:
        """Return the study's parent run id: reopen ``run_id`` if it exists here, else create one."""
        ...

    def has_study_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is this study's parent run in this store."""
        ...

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        """Open the child run of trial ``number`` with its params; return its run id."""
        ...

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log one epoch's metrics with step = epoch (may be buffered)."""
        ...

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        """Write what is buffered and close a child run: ``state`` is complete, pruned or failed."""
        ...

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        """Close the child run of trial ``number`` FAILED with ``reason`` if it is still open
        (the trial's worker died)."""
        ...

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        """Close the child runs still open of trials that have ended (``states``: trial number ->
        complete, pruned or failed), as their end never reached the tracker; return how many."""
        ...

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a local file into a run's artifacts."""
        ...

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Log the study's summary metrics on its parent run."""
        ...

    def describe_study(self, run_id: str, *, params: Mapping[str, str], note: str, report: str | None = None) -> None:
        """Give the parent run its parameters (the recommendation) and its description.

        ``report`` is the artifact path of the study's HTML report on that run, for the
        description to link to (None: no report was logged).
        """
        ...

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        """Close the parent run (FINISHED or KILLED)."""
        ...

    def flush(self) -> None:
        """Write everything buffered so far."""
        ...

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        """Where a user sees the study's runs (None: nowhere)."""
        ...
