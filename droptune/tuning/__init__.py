"""Optuna glue: studies, trials and the loop that runs them."""

from __future__ import annotations

from droptune.tuning._objective import TrialResult, best_record, run_trial
from droptune.tuning._study import (
    Counts,
    count_trials,
    finish_study,
    load_study,
    prepare_study,
    run_worker,
    space_of,
    tune,
)

__all__ = [
    "Counts",
    "TrialResult",
    "best_record",
    "count_trials",
    "finish_study",
    "load_study",
    "prepare_study",
    "run_trial",
    "run_worker",
    "space_of",
    "tune",
]
