"""Pruning that waits for evidence: warm-up relative to training, complete trials kept."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from droptune.config import ClassSpec, SearchSpec, StudySpec, TrainerSpec
from droptune.packing._bookkeeping import prune_decisions
from droptune.tuning._evidence import EvidencePruner, warmup_epochs
from droptune.tuning._factories import PRUNERS

optuna.logging.set_verbosity(optuna.logging.WARNING)


def spec(max_epochs: int, pruner: str = "median") -> StudySpec:
    return StudySpec(
        name="s", model=ClassSpec("m.M"), data=ClassSpec("m.D"),
        search=SearchSpec(pruner=pruner), trainer=TrainerSpec(max_epochs=max_epochs),  # type: ignore[arg-type]
    )


def finished(state: TrialState, curve: list[float]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        state=state, value=min(curve) if state == TrialState.COMPLETE else None,
        params={"p": 0.1}, distributions={"p": FloatDistribution(0, 1)},
        intermediate_values=dict(enumerate(curve)),
    )


def study_with(pruner: optuna.pruners.BasePruner, n_complete: int, n_pruned: int = 0) -> optuna.Study:
    study = optuna.create_study(pruner=pruner)
    good = [1.0 - 0.01 * e for e in range(40)]
    for _ in range(n_complete):
        study.add_trial(finished(TrialState.COMPLETE, good))
    for _ in range(n_pruned):
        study.add_trial(finished(TrialState.PRUNED, [2.0] * 3))
    return study


def bad_trial_pruned_at(study: optuna.Study, epoch: int) -> bool:
    trial = study.ask()
    for step in range(epoch + 1):
        trial.report(5.0, step)  # far worse than every complete trial at every epoch
    return trial.should_prune()


@pytest.mark.parametrize(("max_epochs", "warmup"), [(3, 2), (8, 2), (20, 5), (40, 10), (2000, 500)])
def test_warmup_is_a_quarter_of_max_epochs_at_least_two(max_epochs, warmup):
    assert warmup_epochs(spec(max_epochs)) == warmup


def test_the_study_files_median_pruner_waits_a_quarter_of_training():
    # Fails if the warm-up is fixed at 2 epochs again: a hopeless trial of 40 epochs is kept at epoch 3.
    pruner = PRUNERS["median"](spec(40))
    assert not bad_trial_pruned_at(study_with(pruner, n_complete=6), epoch=3)
    assert not bad_trial_pruned_at(study_with(pruner, n_complete=6), epoch=9)
    assert bad_trial_pruned_at(study_with(pruner, n_complete=6), epoch=10)


@pytest.mark.parametrize("name", ["hyperband", "successive_halving"])
def test_the_other_pruners_start_at_the_warmup_too(name):
    pruner = PRUNERS[name](spec(40))
    assert not bad_trial_pruned_at(study_with(pruner, n_complete=6), epoch=3)


def test_pruning_stops_while_complete_trials_are_too_few_a_share():
    pruner = EvidencePruner(n_warmup_steps=2)
    # 6 complete, 12 pruned: one more pruned would leave under a third complete
    assert not bad_trial_pruned_at(study_with(pruner, n_complete=6, n_pruned=12), epoch=5)
    assert bad_trial_pruned_at(study_with(pruner, n_complete=6, n_pruned=10), epoch=5)


def test_a_packed_population_decides_from_one_snapshot_with_the_same_rules():
    pruner = PRUNERS["median"](spec(40))
    study = study_with(pruner, n_complete=6)
    trials = [study.ask(), study.ask()]
    early, late = {s: 5.0 for s in range(4)}, {s: 5.0 for s in range(11)}
    assert prune_decisions(study, trials, [early, late]) == [False, True]


def test_under_early_stopping_the_warmup_follows_the_epochs_trials_really_ran():
    # max_epochs 150 plans a warm-up of 38 epochs; early stopping ended the complete trials at
    # epoch 12, so a planned warm-up would never let the pruner act (issue 20: 1 of 249 pruned).
    pruner = PRUNERS["median"](spec(150))
    study = optuna.create_study(pruner=pruner)
    for _ in range(6):
        study.add_trial(finished(TrialState.COMPLETE, [1.0 - 0.01 * e for e in range(12)]))
    assert not bad_trial_pruned_at(study, epoch=2)  # a quarter of 12 epochs: 3
    assert bad_trial_pruned_at(study, epoch=3)
    # Before any trial completed there is nothing to compare with: the planned warm-up holds.
    assert not bad_trial_pruned_at(study_with(pruner, n_complete=0), epoch=20)
