"""Reading a droptune study's trials back: ranking, rates per site and per layer type.

Every trial run by droptune carries its rates as Optuna user attributes (``rates``,
``layer_types``, ``rates_by_type``, set by :func:`droptune.tuning.run_trial`); these are
read as they are, whatever the study's granularity, rather than re-derived from params.
"""

from __future__ import annotations

import logging
import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.exceptions import StudyError

log = logging.getLogger(__name__)

RATES_ATTR = "rates"
TYPES_ATTR = "layer_types"
TYPE_RATES_ATTR = "rates_by_type"
CURVE_ATTR = "curve"
PRIOR_ATTR = "prior"


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


def site_rates(trial: FrozenTrial) -> dict[str, float]:
    """``{site name: rate}`` of a trial, from its ``rates`` user attribute."""
    return {str(k): float(v) for k, v in trial.user_attrs.get(RATES_ATTR, {}).items()}


def site_types(trial: FrozenTrial) -> dict[str, str]:
    """``{site name: layer type}`` of a trial, from its ``layer_types`` user attribute."""
    return {str(k): str(v) for k, v in trial.user_attrs.get(TYPES_ATTR, {}).items()}


def type_rates(trial: FrozenTrial) -> dict[str, float]:
    """``{layer type: rate}`` of a trial (the mean over its sites with granularity ``site``).

    Read from the ``rates_by_type`` user attribute; a trial without it falls back to the
    mean of its ``rates`` per type.
    """
    by_type = trial.user_attrs.get(TYPE_RATES_ATTR)
    if isinstance(by_type, dict):
        return {str(k): float(v) for k, v in by_type.items()}
    types = site_types(trial)
    groups: dict[str, list[float]] = {}
    for name, rate in site_rates(trial).items():
        groups.setdefault(types.get(name, "dense"), []).append(rate)
    return {t: sum(v) / len(v) for t, v in groups.items()}


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

    Raises:
        StudyError: If no trial is complete.
    """
    ranked = rank_trials(study)
    if not ranked:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run `droptune tune` "
            "(or let its workers finish) first."
        )
    return ranked[0]
