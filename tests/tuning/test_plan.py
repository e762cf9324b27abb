"""PlanSampler: each new trial of a confirmation takes the next planned (configuration, seed) pair."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from droptune.exceptions import StudyError
from droptune.record import CONFIRM_INDEX_ATTR, CONFIRM_ORIGIN_ATTR, CONFIRM_SEED_ATTR
from droptune.tuning._plan import PlanSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
PLAN = [{"trial": 7, "rates": {"a": 0.1, "b": 0.2}}, {"trial": 3, "rates": {"a": 0.4, "b": 0.0}}]


def start(study: optuna.Study) -> tuple[optuna.Trial, tuple[int, int], dict[str, float]]:
    trial = study.ask()
    rates = {name: trial.suggest_float(name, 0.0, 0.999) for name in ("a", "b")}
    attrs = study._storage.get_trial(trial._trial_id).user_attrs
    return trial, (attrs[CONFIRM_ORIGIN_ATTR], attrs[CONFIRM_INDEX_ATTR]), rates


def test_pairs_go_seed_by_seed_with_their_rates_and_retrain_i_of_each_shares_seed_i():
    study = optuna.create_study(sampler=PlanSampler(PLAN, seeds=2, seed=500))
    started = [start(study) for _ in range(4)]
    assert [pair for _, pair, _ in started] == [(7, 0), (3, 0), (7, 1), (3, 1)]
    assert [rates for *_, rates in started] == [PLAN[0]["rates"], PLAN[1]["rates"]] * 2
    seeds = [study._storage.get_trial(t._trial_id).user_attrs[CONFIRM_SEED_ATTR] for t, _, _ in started]
    assert seeds == [500, 500, 501, 501]  # paired: configurations are compared on the same seeds
    with pytest.raises(StudyError, match="every planned retrain"):
        study.ask()


def test_a_failed_retrain_frees_its_pair_and_a_retried_one_keeps_it():
    study = optuna.create_study(sampler=PlanSampler(PLAN, seeds=1, seed=0))
    first, pair, _ = start(study)
    study.tell(first, state=TrialState.FAIL)
    again, same, rates = start(study)
    assert same == pair == (7, 0) and rates == PLAN[0]["rates"]
    study.tell(again, 1.0)
    # a dead worker's trial is retried as a waiting copy that carries its pair (heartbeat retry)
    study.enqueue_trial(PLAN[1]["rates"], user_attrs={CONFIRM_ORIGIN_ATTR: 3, CONFIRM_INDEX_ATTR: 0})
    retried, kept, rates = start(study)
    assert kept == (3, 0) and rates == PLAN[1]["rates"]
