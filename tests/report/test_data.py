"""droptune.report's trial rows: states, values, gaps, curves and which trials overfit."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from droptune import record
from droptune.report import overfits, trial_curves, trial_rows


def test_one_row_per_trial_with_its_state_value_and_type_rates(study):
    rows = trial_rows(study)
    assert [r.number for r in rows] == list(range(12))
    assert [r.state for r in rows] == ["complete"] * 9 + ["pruned", "pruned", "fail"]
    assert rows[0].value == pytest.approx(1.0)  # the best epoch's objective
    assert rows[9].value == pytest.approx(2.9)  # a pruned trial: its last reported value
    assert rows[4].rates == pytest.approx({"input": 0.08, "dense": 0.2})
    assert rows[4].sites == pytest.approx({"input_dropout": 0.08, "fc.1": 0.2, "fc.4": 0.2})
    assert rows[3].prior and not rows[4].prior


def test_gap_is_the_best_epochs_and_curves_come_from_the_record(study):
    row = trial_rows(study)[7]
    assert row.best_epoch == 2 and row.epochs == 5
    assert row.gap == pytest.approx(0.2)  # epoch 2, not the last epoch's 0.6
    assert row.curves["objective"] == pytest.approx([2.2, 1.9, 1.7, 1.8, 2.0])
    assert row.curves["overfit_gap"] == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.6])


def test_overfitting_trials_are_those_whose_objective_turned_up_as_the_gap_widened(study):
    assert [r.number for r in trial_rows(study) if r.overfits] == [6, 7, 8]


def test_a_rise_within_two_percent_or_with_a_narrowing_gap_is_not_overfitting():
    assert not overfits({"objective": [1.0, 0.5, 0.505], "overfit_gap": [0.0, 0.1, 0.3]})
    assert not overfits({"objective": [1.0, 0.5, 0.6], "overfit_gap": [0.0, 0.3, 0.1]})
    assert overfits({"objective": [0.5, 0.9, 0.8], "overfit_gap": [0.0, 0.1, 0.3]}, maximize=True)


def test_a_trial_without_curves_is_still_a_row():
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params={}, distributions={}, value=0.5, user_attrs=record.start_attrs({"a": 0.1}, {"a": "dense"})
        )
    )
    (row,) = trial_rows(study)
    assert row.curves == {} and row.gap is None and not row.overfits
    assert trial_curves(study.trials[0]) == {}


def test_maximised_studies_mark_overfitting_by_a_falling_objective(add):
    study = optuna.create_study(direction="maximize")
    add(study, {"input_dropout": 0.1, "fc.1": 0.1, "fc.4": 0.1}, [0.5, 0.9, 0.7], [0.0, 0.1, 0.3], state=TrialState.PRUNED)
    (row,) = trial_rows(study)
    # conftest's add() picks the best epoch by min; the row's own check reads the direction
    assert row.maximize and row.overfits
