"""Recommendations: which dropout rate each kind of layer wants, with the evidence."""

from __future__ import annotations

from droptune.recommend._confidence import N_CLASSES_ATTR, Caveat, basis, caveats
from droptune.recommend._importance import variable_importances
from droptune.recommend._plots import (
    gap_figure,
    history_figure,
    importance_figure,
    rates_figure,
    save_plots,
)
from droptune.recommend._recommend import (
    MIN_TRIALS,
    Recommendation,
    SiteRecommendation,
    compute,
    n_kept,
    recommend,
)
from droptune.recommend._table import (
    dump_recommendations,
    recommendation_data,
    recommendation_table,
)
from droptune.recommend._trials import best_trial, complete_trials, find_trial, rank_trials
from droptune.recommend._wording import evidence, which_figure
from droptune.stores._open import open_study, study_names

__all__ = [
    "N_CLASSES_ATTR",
    "Caveat",
    "MIN_TRIALS",
    "Recommendation",
    "SiteRecommendation",
    "basis",
    "best_trial",
    "caveats",
    "complete_trials",
    "compute",
    "dump_recommendations",
    "evidence",
    "find_trial",
    "gap_figure",
    "history_figure",
    "importance_figure",
    "n_kept",
    "open_study",
    "rank_trials",
    "rates_figure",
    "recommend",
    "recommendation_data",
    "recommendation_table",
    "save_plots",
    "study_names",
    "variable_importances",
    "which_figure",
]
