"""The study report: one self-contained HTML page with the answer, how sure it is, and the plots.

Example:
    >>> import optuna, droptune.report
    >>> callable(droptune.report.write_report)
    True
"""

from __future__ import annotations

from droptune.report._data import TrialRow, overfits, trial_curves, trial_rows
from droptune.report._parent_run import (
    recommendation_metrics,
    recommendation_params,
    report_study,
    study_note,
)
from droptune.report._write import render_report, write_report

__all__ = [
    "TrialRow",
    "overfits",
    "recommendation_metrics",
    "recommendation_params",
    "render_report",
    "report_study",
    "study_note",
    "trial_curves",
    "trial_rows",
    "write_report",
]
