"""The report's plots: the y axes of the objective, log with readable ticks when values span a wide range."""

from __future__ import annotations

import optuna

from droptune.report import _figures as figs
from droptune.report._data import trial_rows


def test_a_wide_objective_gets_a_log_axis_labelled_with_its_values(add):
    study = optuna.create_study(study_name="wide")
    for i, last in enumerate([3.0, 1.2, 0.4, 0.25]):
        add(study, {"input_dropout": 0.1, "fc.1": 0.1 * i, "fc.4": 0.1 * i}, [4.0, 2.0, last], [0.1, 0.2, 0.3])
    rows = trial_rows(study)
    for fig in (figs.history_figure(rows, "val_loss", "minimize"), figs.intermediate_figure(study, "val_loss")):
        axis = fig.layout.yaxis
        assert axis.type == "log"
        ticks = list(axis.tickvals)
        assert len(ticks) >= 4 and ticks == sorted(ticks) and 0.5 in ticks and 1.0 in ticks and 2.0 in ticks
        assert min(ticks) >= 0.25 / 1.05 and max(ticks) <= 4.0 * 1.05  # within the values' range
        assert list(axis.ticktext) == [f"{v:g}" for v in ticks] and "0.5" in axis.ticktext  # not a bare "5"


def test_a_narrow_objective_stays_linear(add):
    study = optuna.create_study(study_name="narrow")
    for i, last in enumerate([0.52, 0.5, 0.55]):
        add(study, {"input_dropout": 0.1, "fc.1": 0.1 * i, "fc.4": 0.1 * i}, [0.6, last], [0.1, 0.2])
    fig = figs.history_figure(trial_rows(study), "val_loss", "minimize")
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.tickvals is None


def test_a_range_within_one_decade_still_gets_four_ticks():
    axis = figs._y_axis([0.21, 1.9])
    assert axis["type"] == "log" and len(axis["tickvals"]) >= 4
    assert all(0.2 <= v <= 2.0 for v in axis["tickvals"])
