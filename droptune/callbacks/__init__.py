"""droptune's Lightning callbacks: the overfitting gap and Optuna pruning."""

from __future__ import annotations

from droptune.callbacks._gap import EpochRecord, GapCallback, add_gap, gap_subset_size
from droptune.callbacks._pruning import PruningCallback

__all__ = ["EpochRecord", "GapCallback", "PruningCallback", "add_gap", "gap_subset_size"]
