"""The engine: studies (lifecycle), the scheduler that runs their trials, and the executors.

See :mod:`droptune.tuning._scheduler` for how the pieces fit, and :mod:`droptune.tuning.executors`
for how trials train.
"""

from __future__ import annotations

from droptune.record import TrialResult, best_record
from droptune.tuning._lifecycle import (
    StudyLifecycle,
    load_study,
    prepare_study,
    run_worker,
    space_of,
    tune,
)
from droptune.tuning._scheduler import Counts, count_trials
from droptune.tuning.executors import EXECUTORS, Executor, FitExecutor

__all__ = [
    "EXECUTORS",
    "Counts",
    "Executor",
    "FitExecutor",
    "StudyLifecycle",
    "TrialResult",
    "best_record",
    "count_trials",
    "load_study",
    "prepare_study",
    "run_worker",
    "space_of",
    "tune",
]
