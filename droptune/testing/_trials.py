"""Droptune-like Optuna trials, built without training, for tests of code that reads studies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from droptune.record import (
    PRIOR_ATTR,
    RATES_ATTR,
    TYPE_RATES_ATTR,
    TYPES_ATTR,
    curve_attrs,
    rates_by_type,
)
from droptune.space import GLOBAL_PARAM


def add_trial(
    study: optuna.Study,
    rates: Mapping[str, float],
    value: float | None,
    *,
    layer_types: Mapping[str, str],
    granularity: str = "site",
    state: TrialState = TrialState.COMPLETE,
    prior: bool = False,
    gap: Sequence[float] | None = None,
    constraint: float | None = None,
) -> None:
    """Add one finished trial carrying the user attributes a real droptune trial records.

    Args:
        study: The study to add it to.
        rates: ``{site name: rate}``.
        value: Objective value (ignored unless ``state`` is COMPLETE).
        layer_types: ``{site name: layer type}``.
        granularity: How the study named its Optuna variables: ``site``, ``type`` or
            ``global``.
        state: The trial's state.
        prior: Mark it as the study's textbook-prior trial.
        gap: Its ``overfit_gap`` curve, one value per epoch.
        constraint: Value of its ``overfit_gap`` constraint (``max_gap`` studies).

    Example:
        >>> study = optuna.create_study()
        >>> add_trial(study, {"head.2": 0.3}, 0.5, layer_types={"head.2": "dense"})
        >>> study.best_trial.user_attrs["rates_by_type"]
        {'dense': 0.3}
    """
    type_rates = rates_by_type(rates, layer_types)
    params = {
        "site": dict(rates),
        "type": type_rates,
        "global": {GLOBAL_PARAM: next(iter(rates.values()))},
    }[granularity]
    attrs: dict[str, object] = {
        RATES_ATTR: dict(rates),
        TYPES_ATTR: dict(layer_types),
        TYPE_RATES_ATTR: type_rates,
        **curve_attrs(gap or [0.1, 0.05, 0.02]),
    }
    if prior:
        attrs[PRIOR_ATTR] = True
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions={k: FloatDistribution(0.0, 0.9) for k in params},
            value=value if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs=attrs,
            system_attrs={"constraints:overfit_gap": constraint} if constraint is not None else {},
        )
    )
