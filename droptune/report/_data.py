"""What the report reads from a study: one plain row per trial, curves included.

Everything the HTML report knows about a trial goes through :func:`trial_rows`, and its
per-epoch curves through :func:`trial_curves`: the objective per epoch is what the trial
reported to Optuna (its intermediate values, which pruning reads), the gap per epoch is
read through :mod:`droptune.record`. A trial without curves is still a row; its plots are
left out, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.record import (
    BEST_EPOCH_ATTR,
    EPOCHS_ATTR,
    GAP_ATTR,
    PRIOR_ATTR,
    gap_curve,
    site_rates,
    site_types,
    type_rates,
)

OBJECTIVE_CURVE = "objective"
# A trial overfits when its objective ends this much (relative) worse than its best epoch's
# while its gap widened: validation got worse because the model fitted the training data.
OVERFIT_RISE = 0.02


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report shows it.

    Attributes:
        number: Optuna trial number.
        state: ``complete``, ``pruned``, ``fail`` or ``running`` (Optuna's state, lower case).
        value: The objective of a complete trial; the last reported value of a pruned one.
        gap: Overfitting gap (val_loss - train_loss, eval mode) at the trial's best epoch.
        rates: ``{layer type: rate}`` (the mean of its sites under granularity ``site``).
        sites: ``{site: rate}``.
        layer_types: ``{site: layer type}``.
        curves: ``{name: [value per epoch]}``: ``objective`` and ``overfit_gap`` where recorded.
        best_epoch: Epoch (from 0) of the best objective, when recorded.
        epochs: Epochs trained, when recorded.
        prior: Whether this is the textbook-prior trial.
        maximize: Whether the objective is maximised (for :attr:`overfits`).
    """

    number: int
    state: str
    value: float | None
    gap: float | None
    rates: dict[str, float]
    sites: dict[str, float]
    layer_types: dict[str, str]
    curves: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None
    epochs: int | None = None
    prior: bool = False
    maximize: bool = False

    @property
    def overfits(self) -> bool:
        """The objective ended >= 2 % worse than at its best epoch while the gap widened."""
        return overfits(self.curves, maximize=self.maximize)


def trial_curves(trial: FrozenTrial) -> dict[str, list[float]]:
    """``{name: [value per epoch]}`` of a trial; empty when the record holds none.

    ``objective`` is the trial's intermediate values (one per epoch); the record's curves
    (``overfit_gap``, and any other it keeps) are added as they are.
    """
    curves: dict[str, list[float]] = {}
    if trial.intermediate_values:
        curves[OBJECTIVE_CURVE] = [_float(trial.intermediate_values[k]) for k in sorted(trial.intermediate_values)]
    gap = gap_curve(trial)
    if gap:
        curves[GAP_ATTR] = [_float(v) for v in gap]
    return curves


def overfits(curves: dict[str, list[float]], *, maximize: bool = False) -> bool:
    """Whether a trial's curves show overfitting: the objective got worse and the gap widened.

    Example:
        >>> overfits({"objective": [1.0, 0.8, 0.9], "overfit_gap": [0.0, 0.1, 0.3]})
        True
        >>> overfits({"objective": [1.0, 0.8, 0.79], "overfit_gap": [0.0, 0.1, 0.3]})
        False
    """
    values, gap = curves.get(OBJECTIVE_CURVE, []), curves.get(GAP_ATTR, [])
    sign = -1.0 if maximize else 1.0
    finite = [(i, sign * v) for i, v in enumerate(values) if math.isfinite(v) and i < len(gap)]
    if len(finite) < 2:
        return False
    best_epoch, best = min(finite, key=lambda p: p[1])
    last_epoch, last = finite[-1]
    return last > best + OVERFIT_RISE * abs(best) and gap[last_epoch] > gap[best_epoch]


def trial_rows(study: optuna.Study) -> list[TrialRow]:
    """Every finished or running trial of a droptune study, in trial-number order."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        curves = trial_curves(trial)
        rows.append(
            TrialRow(
                number=trial.number,
                state=trial.state.name.lower(),
                value=_value(trial),
                gap=_gap(trial, curves),
                rates=type_rates(trial),
                sites=site_rates(trial),
                layer_types=site_types(trial),
                curves=curves,
                best_epoch=_int(trial.user_attrs.get(BEST_EPOCH_ATTR)),
                epochs=_int(trial.user_attrs.get(EPOCHS_ATTR)) or (len(curves.get(GAP_ATTR, [])) or None),
                prior=bool(trial.user_attrs.get(PRIOR_ATTR)),
                maximize=maximize,
            )
        )
    return rows


def _value(trial: FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return float(trial.value)
    if trial.intermediate_values:
        return float(trial.intermediate_values[max(trial.intermediate_values)])
    return None


def _gap(trial: FrozenTrial, curves: dict[str, list[float]]) -> float | None:
    recorded = trial.user_attrs.get(GAP_ATTR)
    if isinstance(recorded, (int, float)) and math.isfinite(recorded):
        return float(recorded)
    best = _int(trial.user_attrs.get(BEST_EPOCH_ATTR))
    gap = curves.get(GAP_ATTR, [])
    return gap[best] if best is not None and 0 <= best < len(gap) and math.isfinite(gap[best]) else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
