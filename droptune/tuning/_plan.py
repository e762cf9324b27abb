"""The sampler of a confirmation study: each new trial gets the next planned (configuration, seed) pair.

See :mod:`droptune.tuning._confirm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from droptune.exceptions import StudyError
from droptune.record import CONFIRM_INDEX_ATTR, CONFIRM_ORIGIN_ATTR, CONFIRM_SEED_ATTR


class PlanSampler(optuna.samplers.BaseSampler):
    """Give each new trial of a confirmation the next (configuration, seed) pair of its plan.

    A pair is taken while a trial holding it is complete, running or waiting (a retried
    trial of a dead worker keeps its pair); a failed one frees it.

    Args:
        plan: ``[{"trial": n, "rates": {site: rate}}, ...]``.
        seeds: Retrains per configuration.
        seed: The confirmation's seed (recorded per trial, plus its number).
    """

    def __init__(self, plan: Sequence[dict[str, Any]], seeds: int, seed: int) -> None:
        self.plan = list(plan)
        self.seeds = seeds
        self.seed = seed
        self._rates: dict[int, dict[str, float]] = {}

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Called by Optuna as a trial starts: pick its pair (unless it was enqueued)."""
        storage = study._storage
        if "fixed_params" in trial.system_attrs:  # a retried trial: its pair, seed and rates came with it
            return
        taken = {
            (t.user_attrs.get(CONFIRM_ORIGIN_ATTR), t.user_attrs.get(CONFIRM_INDEX_ATTR))
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
            if t.number != trial.number
        }
        for index in range(self.seeds):  # seed-major: stopped early, every configuration has as many
            for entry in self.plan:
                if (entry["trial"], index) not in taken:
                    storage.set_trial_user_attr(trial._trial_id, CONFIRM_ORIGIN_ATTR, entry["trial"])
                    storage.set_trial_user_attr(trial._trial_id, CONFIRM_INDEX_ATTR, index)
                    # Retrain i of every configuration trains with one seed: finalists are
                    # compared on the same seeds (common random numbers), not on luck.
                    storage.set_trial_user_attr(trial._trial_id, CONFIRM_SEED_ATTR, self.seed + index)
                    self._rates[trial._trial_id] = dict(entry["rates"])
                    return
        raise StudyError(f"confirmation {study.study_name!r}: every planned retrain is done or running.")

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        try:
            return self._rates[trial._trial_id][param_name]
        except KeyError:
            raise StudyError(
                f"confirmation {study.study_name!r}: the planned configuration has no site {param_name!r}; "
                "was the model changed since the search?"
            ) from None
