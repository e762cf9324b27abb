"""In-memory droptune studies whose trials carry what a real trial records, per epoch too."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from droptune import record

optuna.logging.set_verbosity(optuna.logging.WARNING)

TYPES = {"input_dropout": "input", "fc.1": "dense", "fc.4": "dense"}


def add_trial(
    study: optuna.Study,
    rates: dict[str, float],
    objective: Sequence[float],
    gap: Sequence[float],
    *,
    state: TrialState = TrialState.COMPLETE,
    granularity: str = "type",
    prior: bool = False,
    layer_types: dict[str, str] = TYPES,
) -> optuna.trial.FrozenTrial:
    """Add a trial with per-epoch objective (intermediate values) and gap, as the engine records them."""
    best = min(range(len(objective)), key=lambda i: objective[i])
    attrs = record.start_attrs(rates, layer_types)
    attrs.update(record.curve_attrs(gap))
    if state != TrialState.FAIL:
        attrs.update({record.BEST_EPOCH_ATTR: best, record.GAP_ATTR: gap[best], record.EPOCHS_ATTR: len(objective)})
    if prior:
        attrs[record.PRIOR_ATTR] = True
    params = dict(rates) if granularity == "site" else record.rates_by_type(rates, layer_types)
    trial = optuna.trial.create_trial(
        params=params,
        distributions={k: FloatDistribution(0.0, 0.9) for k in params},
        value=objective[best] if state == TrialState.COMPLETE else None,
        state=state,
        user_attrs=attrs,
        intermediate_values=dict(enumerate(objective)),
    )
    study.add_trial(trial)
    return study.trials[-1]


@pytest.fixture
def add() -> Callable[..., optuna.trial.FrozenTrial]:
    """:func:`add_trial`: ``add(study, rates, objective, gap, state=..., prior=...)``."""
    return add_trial


@pytest.fixture
def study() -> optuna.Study:
    """Twelve trials: nine complete (three of them overfit), two pruned, one failed.

    Trial i's dense rate is 0.05 * i and its input rate 0.02 * i; the complete trials'
    values grow with i, so trial 0 is best. Trials 6-8 overfit: their objective turns up
    after epoch 2 while their gap keeps widening.
    """
    made = optuna.create_study(study_name="toy", direction="minimize")
    for i in range(9):
        base = 1.0 + 0.1 * i
        if i >= 6:
            objective, gap = [base + 0.5, base + 0.2, base, base + 0.1, base + 0.3], [0.0, 0.1, 0.2, 0.4, 0.6]
        else:
            objective, gap = [base + 0.5, base + 0.3, base + 0.1, base + 0.02, base], [0.0, 0.02, 0.03, 0.03, 0.04]
        add_trial(made, {"input_dropout": 0.02 * i, "fc.1": 0.05 * i, "fc.4": 0.05 * i}, objective, gap, prior=i == 3)
    add_trial(made, {"input_dropout": 0.2, "fc.1": 0.6, "fc.4": 0.6}, [3.0, 2.9], [0.0, 0.0], state=TrialState.PRUNED)
    add_trial(made, {"input_dropout": 0.25, "fc.1": 0.65, "fc.4": 0.65}, [3.1, 3.0], [0.0, 0.0], state=TrialState.PRUNED)
    add_trial(made, {"input_dropout": 0.1, "fc.1": 0.1, "fc.4": 0.1}, [2.0], [0.0], state=TrialState.FAIL)
    return made
