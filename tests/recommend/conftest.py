"""Build droptune-like Optuna studies in memory, fast, with known trials."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Three sites of a small model: two dense ones and an input one.
TYPES = {"input_dropout": "input", "fc.1": "dense", "fc.4": "dense"}


def by_type(rates: dict[str, float], types: dict[str, str]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for name, rate in rates.items():
        groups.setdefault(types[name], []).append(rate)
    return {t: sum(v) / len(v) for t, v in groups.items()}


def add(
    study: optuna.Study,
    rates: dict[str, float],
    value: float | None,
    *,
    types: dict[str, str] = TYPES,
    granularity: str = "site",
    state: TrialState = TrialState.COMPLETE,
    prior: bool = False,
    gap: list[float] | None = None,
    constraint: float | None = None,
) -> None:
    """Add one trial carrying the user attributes droptune's run_trial sets."""
    type_rates = by_type(rates, types)
    params = {"site": rates, "type": type_rates, "global": {"dropout": next(iter(rates.values()))}}[granularity]
    attrs = {
        "rates": rates,
        "layer_types": types,
        "rates_by_type": type_rates,
        "curve": {"overfit_gap": gap or [0.1, 0.05, 0.02]},
    }
    if prior:
        attrs["prior"] = True
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


@pytest.fixture
def make_study() -> Callable[..., optuna.Study]:
    """``make_study(name, direction)``: an empty in-memory study."""

    def make(name: str = "s", direction: str = "minimize") -> optuna.Study:
        return optuna.create_study(study_name=name, direction=direction)

    return make


@pytest.fixture
def add_trial() -> Callable[..., None]:
    """``add_trial(study, rates, value, ...)``: see :func:`add`."""
    return add
