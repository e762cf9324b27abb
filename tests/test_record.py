"""droptune.record: what a trial writes (params, attributes, summary, constraint) and reads back."""

from __future__ import annotations

import json

import optuna
import pytest

from droptune.record import (
    GAP_CONSTRAINT,
    TrialResult,
    finish_attrs,
    gap_constraint,
    gap_curve,
    model_rates,
    outcome,
    run_params,
    run_summary,
    start_attrs,
    type_rates,
)

HISTORY = [
    {"epoch": 0.0, "val_loss": 1.0, "train_loss_eval": 0.9, "overfit_gap": 0.1},
    {"epoch": 1.0, "val_loss": 0.7, "train_loss_eval": 0.5, "overfit_gap": 0.2},
    {"epoch": 2.0, "val_loss": 0.8, "train_loss_eval": 0.4, "overfit_gap": 0.4},
]


def test_params_hold_each_site_and_each_type_without_collisions() -> None:
    rates = {"fc1.drop": 0.2, "fc2.drop": 0.4, "dense": 0.1}  # a site whose path is a type's name
    types = {"fc1.drop": "dense", "fc2.drop": "dense", "dense": "input"}
    params = run_params(rates, types)
    assert params["rate.fc1.drop"] == "0.2" and params["type.fc2.drop"] == "dense"
    assert params["rate.dense"] == "0.1"  # the site keeps its own key...
    assert float(params["rate.dense.mean"]) == pytest.approx(0.3)  # ...the type gets .mean
    assert params["rate.input"] == "0.1"


def test_a_complete_trial_records_its_best_epoch_not_its_last() -> None:
    result = outcome(HISTORY, "val_loss", "minimize")
    assert result.state == "complete" and result.value == 0.7
    attrs = finish_attrs(result, "val_loss", "minimize")
    assert attrs == {"gap_curve.0": "0.1 0.2 0.4", "best_epoch": 1, "overfit_gap": 0.2, "epochs": 3}
    assert run_summary(result, "val_loss", "minimize") == {
        "best_val_loss": 0.7, "best_epoch": 1.0, "best_overfit_gap": 0.2, "sort_key": 0.7,
    }
    assert gap_constraint(result, "val_loss", "minimize", max_gap=0.15) == pytest.approx(0.05)
    assert gap_constraint(result, "val_loss", "minimize", max_gap=None) is None


def test_failed_and_pruned_trials_keep_their_reason() -> None:
    failed = outcome(HISTORY[:1], "val_loss", "minimize", failed="non-finite loss at epoch 1")
    assert failed.state == "failed" and failed.value is None
    attrs = finish_attrs(failed, "val_loss", "minimize")
    assert attrs["fail_reason"] == "non-finite loss at epoch 1" and "best_epoch" not in attrs
    assert gap_constraint(failed, "val_loss", "minimize", max_gap=0.1) is None
    pruned = outcome(HISTORY, "val_loss", "minimize", pruned_at=2)
    assert pruned.state == "pruned" and finish_attrs(pruned, "val_loss", "minimize")["fail_reason"] == "pruned at epoch 2"
    assert outcome([], "val_loss", "minimize").reason == "no validation epoch ran"
    assert finish_attrs(TrialResult("failed", reason="x" * 5000), "val_loss", "minimize")["fail_reason"] == "x" * 2000


def test_maximised_metrics_take_the_highest_epoch() -> None:
    history = [dict(r, val_acc=a) for r, a in zip(HISTORY, (0.5, 0.9, 0.7))]
    assert outcome(history, "val_acc", "maximize").value == 0.9
    assert finish_attrs(outcome(history, "val_acc", "maximize"), "val_acc", "maximize")["best_epoch"] == 1


def test_a_trial_written_with_the_record_reads_back() -> None:
    rates, types = {"a": 0.2, "b": 0.6}, {"a": "dense", "b": "dense"}
    attrs = start_attrs(rates, types, model_rates={**rates, "c": 0.1}, model_types={**types, "c": "input"}, pack=8)
    attrs.update(finish_attrs(outcome(HISTORY, "val_loss", "minimize"), "val_loss", "minimize"))
    trial = optuna.trial.create_trial(value=0.7, user_attrs=attrs)
    assert type_rates(trial) == {"dense": pytest.approx(0.4)}
    assert model_rates(trial) == {"a": 0.2, "b": 0.6, "c": 0.1}
    assert gap_curve(trial) == [0.1, 0.2, 0.4]
    assert attrs["pack"] == 8
    # Every attribute is a scalar or a small flat structure (optuna-dashboard shows each in a cell).
    assert all(not isinstance(v, dict) or all(not isinstance(x, dict) for x in v.values()) for v in attrs.values())


def test_a_long_gap_curve_is_short_lines_in_epoch_order() -> None:
    # optuna-dashboard never wraps an attribute (white-space: nowrap) and widens the trial page
    # to the longest: each attribute, as it renders it (key, space, value), must fit one line.
    history = [{"epoch": e, "val_loss": 1.0 / (e + 1), "overfit_gap": -0.00123456789 * e} for e in range(105)]
    attrs = finish_attrs(outcome(history, "val_loss", "minimize"), "val_loss", "minimize")
    assert "curve" not in attrs and "gap_curve" not in attrs  # neither older form: no list of 105 values
    keys = [k for k in attrs if k.startswith("gap_curve.")]
    assert keys[:3] == ["gap_curve.000", "gap_curve.008", "gap_curve.016"] and keys[-1] == "gap_curve.104"
    assert keys == sorted(keys)  # text order is epoch order, as a viewer sorting keys shows them
    rendered = [f"{k} {v if isinstance(v, str) else json.dumps(v)}" for k, v in attrs.items()]
    assert max(len(line) for line in rendered) <= 95  # the worst case: 8 values like -0.001234
    trial = optuna.trial.create_trial(value=0.01, user_attrs=dict(reversed(attrs.items())))
    assert gap_curve(trial) == pytest.approx([-0.00123456789 * e for e in range(105)], rel=1e-3)


def test_the_single_string_gap_curve_of_earlier_studies_still_reads() -> None:
    trial = optuna.trial.create_trial(value=1.0, user_attrs={"gap_curve": "0.3 0.1 nan"})
    assert gap_curve(trial)[:2] == [0.3, 0.1] and len(gap_curve(trial)) == 3


def test_older_studies_gap_curve_still_reads() -> None:
    trial = optuna.trial.create_trial(value=1.0, user_attrs={"curve": {"overfit_gap": [0.3, 0.1]}})
    assert gap_curve(trial) == [0.3, 0.1]


def test_readers_fall_back_for_trials_without_the_optional_attributes() -> None:
    trial = optuna.trial.create_trial(value=1.0, user_attrs={"rates": {"a": 0.2, "b": 0.4}, "layer_types": {"a": "dense", "b": "dense"}})
    assert type_rates(trial) == {"dense": pytest.approx(0.3)}
    assert model_rates(trial) == {"a": 0.2, "b": 0.4}
    assert gap_curve(trial) == []
    assert GAP_CONSTRAINT == "overfit_gap"
