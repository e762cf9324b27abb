"""Importance of each Optuna variable of a study, or a note saying why there is none."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial

from droptune.record import complete_trials


def variable_importances(
    study: optuna.Study, *, target: Callable[[FrozenTrial], float] | None = None
) -> tuple[dict[str, float] | None, str | None]:
    """``{variable: importance}`` (optuna.importance, normalised to sum to 1) and a note.

    One variable is all the importance there is (1.0). With two or more, Optuna's default
    evaluator (PED-ANOVA) is asked; when it cannot tell the variables apart (too few
    trials, no spread in the values) or fails, the result is None and the note says why.

    Args:
        study: A droptune study.
        target: What the importance is of (Optuna's ``target=``, e.g. the overfitting gap);
            default the objective. Trials where it is not finite are left out.
    """
    trials = complete_trials(study)
    if target is not None:
        trials = [t for t in trials if math.isfinite(_safe(target, t))]
    names = _common_variables(trials)
    if not names:
        return None, "the complete trials share no Optuna variable: no importance."
    if len(names) == 1:
        return {names[0]: 1.0}, None
    values = [t.value if target is None else target(t) for t in trials]
    if len(trials) < 2 or len(set(values)) < 2:
        return None, (
            f"importance needs complete trials with different values; {len(trials)} trial(s) "
            f"with {len(set(values))} distinct value(s) cannot rank {len(names)} variables."
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = optuna.importance.get_param_importances(
                _only(study, trials) if target is not None else study, params=names, target=target, normalize=True
            )
        except Exception as err:  # noqa: BLE001  (the evaluators raise various errors on degenerate studies)
            return None, f"optuna.importance failed ({type(err).__name__}: {err}); importance is left out."
    if any("will be equal" in str(w.message) for w in caught):
        return None, f"too few trials ({len(trials)}) for optuna.importance to rank the variables."
    if not found or not all(math.isfinite(v) for v in found.values()) or sum(found.values()) <= 0.0:
        return None, "optuna.importance found no variation to attribute; importance is left out."
    return {k: float(v) for k, v in found.items()}, None


def _common_variables(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    """Variables every trial has, in the first trial's order."""
    if not trials:
        return []
    common = set(trials[0].distributions)
    for trial in trials[1:]:
        common &= set(trial.distributions)
    return [name for name in trials[0].distributions if name in common]


def _safe(target: Callable[[FrozenTrial], float], trial: FrozenTrial) -> float:
    try:
        return float(target(trial))
    except (KeyError, TypeError, ValueError):
        return math.nan


def _only(study: optuna.Study, trials: list[FrozenTrial]) -> optuna.Study:
    """An in-memory copy of ``study`` holding only ``trials`` (those where the target exists)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        copy = optuna.create_study(directions=study.directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    copy.add_trials(trials)
    return copy
