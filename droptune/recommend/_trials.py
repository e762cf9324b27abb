"""Reading a droptune study's trials back: ranking, rates per site and per layer type.

Every trial run by droptune carries its rates as Optuna user attributes (``rates``,
``layer_types``, ``rates_by_type``: see :mod:`droptune.record`); these are
read as they are, whatever the study's granularity, rather than re-derived from params.
"""

from __future__ import annotations

import logging
import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.exceptions import StudyError
from droptune.record import (
    CURVE_ATTR,
    PRIOR_ATTR,
    RATES_ATTR,
    TYPE_RATES_ATTR,
    TYPES_ATTR,
    confirmed_finalists,
    site_rates,
    site_types,
    type_rates,
)

log = logging.getLogger(__name__)

# The trial record's keys and readers are re-exported for this package's modules.
__all__ = [
    "CURVE_ATTR",
    "PRIOR_ATTR",
    "RATES_ATTR",
    "TYPES_ATTR",
    "TYPE_RATES_ATTR",
    "best_trial",
    "complete_trials",
    "find_trial",
    "rank_trials",
    "site_rates",
    "site_types",
    "type_rates",
]


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's complete trials with a finite value and droptune's rate attributes."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    usable = [t for t in trials if isinstance(t.user_attrs.get(RATES_ATTR), dict)]
    if len(usable) < len(trials):
        log.warning(
            "study %r: %d complete trials carry no %r user attribute (not run by droptune?) and are ignored.",
            study.study_name,
            len(trials) - len(usable),
            RATES_ATTR,
        )
    return usable


def rank_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first: feasible ones (all constraints <= 0) before the others,
    then by value in the study's direction (Optuna's notion of the best trial)."""
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MINIMIZE else -1.0

    def key(trial: FrozenTrial) -> tuple[bool, float, int]:
        infeasible = any(c > 0.0 for c in trial.constraints.values())
        return infeasible, sign * float(trial.value), trial.number  # type: ignore[arg-type]

    return sorted(complete_trials(study), key=key)


def find_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """The complete trial ``number`` of a study, or a StudyError listing the valid ones."""
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    valid = [t.number for t in complete_trials(study)]
    shown = f"{valid[:30]}{' ...' if len(valid) > 30 else ''}" if valid else "none"
    if found is None:
        raise StudyError(
            f"study {study.study_name!r} has no trial {number} (trials 0-{len(trials) - 1}); "
            f"complete trials: {shown}."
        )
    if found.number not in valid:
        raise StudyError(
            f"trial {number} of study {study.study_name!r} is {found.state.name}, not a complete "
            f"droptune trial with rates; complete trials: {shown}."
        )
    return found


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The study's best complete trial (see :func:`rank_trials`).

    In a confirmed study (``droptune confirm``), the finalist with the best mean over fresh
    seeds, rather than the trial with the best single (and partly lucky) value.

    Raises:
        StudyError: If no trial is complete.
    """
    ranked = rank_trials(study)
    if not ranked:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run `droptune tune` "
            "(or let its workers finish) first."
        )
    complete = {t.number: t for t in ranked}
    confirmed = [complete[f["trial"]] for f in confirmed_finalists(study.user_attrs) if f["trial"] in complete]
    return confirmed[0] if confirmed else ranked[0]
