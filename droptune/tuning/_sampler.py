"""TPE that learns from trials which failed because of their rates.

Optuna's TPE models only COMPLETE and PRUNED trials: a FAIL trial is invisible to it. Where
a region of rates makes the loss NaN (or the GPU run out of memory), TPE kept proposing that
region: 10 of 14 trials failed in one study of issue 20. Optuna offers no switch for this, so
droptune writes its own, smallest possible, piece: :class:`FailureAwareTPESampler` shows TPE
each trial that failed *because of its rates* (:func:`droptune.record.failed_by_rates`) as a
pruned trial whose last report was NaN, which TPE ranks below every other trial (Optuna's
``_get_pruned_trial_score``). The stored trial stays FAIL with its reason: only the
sampler's view changes, and failures of the user's code (an exception) stay out of it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from droptune.record import failed_by_rates


class _FailuresAsWorst:
    """A read-only view of a study in which rate failures look like the worst pruned trials."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=None, use_cache=use_cache)
        return _shown(trials, states)

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return _shown(self._study.get_trials(deepcopy=deepcopy, states=None), states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def _shown(trials: Sequence[FrozenTrial], states: Container[TrialState] | None) -> list[FrozenTrial]:
    out = []
    for trial in trials:
        if trial.state == TrialState.FAIL and trial.params and failed_by_rates(trial):
            trial = copy.copy(trial)
            step = trial.last_step if trial.last_step is not None else 0
            trial.intermediate_values = {**trial.intermediate_values, step: math.nan}
            trial.state = TrialState.PRUNED
        if states is None or trial.state in states:
            out.append(trial)
    return out


class FailureAwareTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPESampler, shown rate failures as the worst trials (see the module docstring).

    Takes TPESampler's arguments unchanged.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=FailureAwareTPESampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_float("dense", 0.0, 0.8), n_trials=3)
        >>> len(study.trials)
        3
    """

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return super().infer_relative_search_space(_FailuresAsWorst(study), trial)  # type: ignore[arg-type]

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return super().sample_relative(_FailuresAsWorst(study), trial, search_space)  # type: ignore[arg-type]

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        view = _FailuresAsWorst(study)
        return super().sample_independent(view, trial, param_name, param_distribution)  # type: ignore[arg-type]
