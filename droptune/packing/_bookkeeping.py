"""Pruning a whole population at once.

A population of K trials asks K pruning decisions per epoch, and each ``should_prune`` of a
median pruner reads every trial of the study. Pruners that only read the study (median,
percentile) therefore decide for every member from one snapshot of the study per epoch
(:func:`prune_decisions`); other pruners (Hyperband, successive halving, which write as they
decide) are asked through ``trial.should_prune`` as usual, once the queued writes before
them are done. (The writes themselves go through :class:`droptune.tuning._bookkeeper.Bookkeeper`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# Pruners whose decision only reads the study's trials: safe to run against a snapshot.
SNAPSHOT_PRUNERS: tuple[type[optuna.pruners.BasePruner], ...] = (
    optuna.pruners.MedianPruner,
    optuna.pruners.PercentilePruner,
)


def prune_decisions(
    study: optuna.Study,
    trials: Sequence[optuna.Trial],
    reported: Sequence[Mapping[int, float]],
) -> list[bool]:
    """Whether each running trial should be pruned now, given what it has reported.

    Args:
        study: The study.
        trials: The population's trials.
        reported: For each trial, every ``{step: value}`` it reported so far (its newest
            reports may still be queued for the storage).

    Returns:
        One decision per trial, as ``trial.should_prune()`` would give it.
    """
    pruner = study.pruner
    if isinstance(pruner, optuna.pruners.NopPruner):
        return [False] * len(trials)
    if type(pruner) not in SNAPSHOT_PRUNERS and not getattr(pruner, "snapshot_safe", False):
        return [trial.should_prune() for trial in trials]
    snapshot: Any = _Snapshot(study, study.get_trials(deepcopy=False))  # duck-types the Study it reads
    return [
        pruner.prune(
            snapshot,
            optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=dict(values)),
        )
        for values in reported
    ]


class _Snapshot:
    """The study as a read-only pruner sees it, with its trials read once."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._trials = trials

    def get_trials(
        self, deepcopy: bool = False, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [t for t in self._trials if states is None or t.state in states]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
