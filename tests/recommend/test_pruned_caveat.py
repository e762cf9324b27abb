"""The ``pruned`` caveat: a recommendation resting on a handful of complete trials because pruning ate the rest."""

from __future__ import annotations

from optuna.trial import TrialState

from droptune.recommend import caveats


def study_of(make_study, add_trial, n_complete: int, n_pruned: int):
    study = make_study()
    for i in range(n_complete):
        add_trial(study, {"input_dropout": 0.1, "fc.1": 0.1 * i, "fc.4": 0.1 * i}, 1.0 + 0.1 * i)
    for _ in range(n_pruned):
        add_trial(study, {"input_dropout": 0.2, "fc.1": 0.5, "fc.4": 0.5}, None, state=TrialState.PRUNED)
    return study


def kinds(study):
    return [c.kind for c in caveats(study)]


def test_most_trials_pruned_and_few_complete_is_said(make_study, add_trial):
    found = [c for c in caveats(study_of(make_study, add_trial, 5, 19)) if c.kind == "pruned"]
    assert len(found) == 1
    assert "stopped 19 of 24 finished trials" in found[0].message and "only 5 complete" in found[0].message


def test_enough_complete_trials_or_little_pruning_says_nothing(make_study, add_trial):
    assert "pruned" not in kinds(study_of(make_study, add_trial, 10, 30))  # enough complete trials
    assert "pruned" not in kinds(study_of(make_study, add_trial, 6, 6))  # pruning did not eat most
    assert "pruned" not in kinds(study_of(make_study, add_trial, 8, 0))
