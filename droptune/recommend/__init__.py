"""Recommendations: which dropout rate each kind of layer wants, with the evidence."""

from __future__ import annotations

from droptune.recommend._confidence import Caveat, basis, caveats
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
from droptune.recommend._wording import evidence, which_figure

__all__ = [
    "Caveat",
    "MIN_TRIALS",
    "Recommendation",
    "SiteRecommendation",
    "basis",
    "caveats",
    "compute",
    "dump_recommendations",
    "evidence",
    "gap_figure",
    "history_figure",
    "importance_figure",
    "n_kept",
    "rates_figure",
    "recommend",
    "recommendation_data",
    "recommendation_table",
    "save_plots",
    "variable_importances",
    "which_figure",
]
