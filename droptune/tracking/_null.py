"""A tracker that records nothing: for studies that only need Optuna, and for benchmarks."""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping


class NullTracker:
    """Implements :class:`~droptune.tracking.Tracker` and keeps nothing.

    Example:
        >>> tracker = NullTracker()
        >>> run = tracker.start_trial(tracker.study_run(), 0, {"rate.fc": "0.5"})
        >>> tracker.end_trial(run, "complete")
    """

    keeps_artifacts = False

    def __init__(self) -> None:
        self._ids = itertools.count()

    def study_run(self, run_id: str | None = None) -> str:
        return run_id or f"null-{next(self._ids)}"

    def has_study_run(self, run_id: str) -> bool:
        return True

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        return f"null-{next(self._ids)}"

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        pass

    def end_trial(
        self, run_id: str, state: str, *, summary: Mapping[str, float] | None = None, reason: str | None = None
    ) -> None:
        pass

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        pass

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        return 0

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        pass

    def describe_study(self, run_id: str, *, params: Mapping[str, str], note: str, report: str | None = None) -> None:
        pass

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        pass

    def flush(self) -> None:
        pass

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        return None
