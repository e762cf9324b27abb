"""Caveats on how much of the question a study covered: enough trials, and ranges that hold the answer.

Two findings of issue 20: the best input rates of small noisy tasks lay above the old
0.3 top of the range, where droptune's top trials piled up at the edge with no word said;
and recommendations rested on 3-6 complete trials with no warning. Both are read from what
Optuna stores (each trial's parameters and their distributions).
"""

from __future__ import annotations

import statistics

from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial

from droptune.record import site_types
from droptune.space import GLOBAL_PARAM, SCALE_PREFIX

# Fewer complete trials than this: the recommendation is a rough guide (5 is the floor
# below which TPE has not even left its random start-up; 10 leaves it a few trials of its own).
FEW_TRIALS = 10
# The leaders' median within this share of the range's width of its top: "at the edge".
EDGE_SHARE = 0.1
# How far a widened range should reach, and never beyond (a drop rate near 1 trains nothing).
WIDEN_BY = 0.2
HIGHEST = 0.9


def few_trials(ranked: list[FrozenTrial]) -> tuple[str, str] | None:
    """Fewer than :data:`FEW_TRIALS` complete trials back the recommendation."""
    if len(ranked) >= FEW_TRIALS:
        return None
    return "few_trials", (
        f"only {len(ranked)} complete trials back this recommendation (fewer than {FEW_TRIALS}): the first 5 of "
        "a study are the prior, no dropout and random start-up trials, so the search has barely begun. "
        f"Treat the rates as a rough guide and run more trials (--n-trials {max(2 * FEW_TRIALS, 4 * len(ranked))})."
    )


def range_edges(leaders: list[FrozenTrial]) -> tuple[str, str] | None:
    """The leaders' rates of some variable sit at the top of its range: the answer may lie beyond.

    Args:
        leaders: The trials the recommendation is drawn from (the top of the study).
    """
    if len(leaders) < 3:
        return None
    found = []
    for name, dist in leaders[0].distributions.items():
        if name.startswith(SCALE_PREFIX) or not isinstance(dist, FloatDistribution) or dist.high >= HIGHEST:
            continue
        values = [t.params[name] for t in leaders if name in t.params]
        if values and statistics.median(values) >= dist.high - EDGE_SHARE * (dist.high - dist.low):
            found.append((name, dist))
    if not found:
        return None
    keys = ", ".join(f"{_type_of(name, leaders[0])}: [{dist.low:g}, {min(HIGHEST, dist.high + WIDEN_BY):g}]"
                     for name, dist in found)
    listed = ", ".join(f"{name!r} (top {dist.high:g})" for name, dist in found)
    return "range_edge", (
        f"the best trials sit at the top of the range of {listed}: the best rate may lie above it, where the "
        f"search cannot go. Widen it in the study file, `search: {{ranges: {{{keys}}}}}`, and run more trials."
    )


def _type_of(param: str, trial: FrozenTrial) -> str:
    """The ``search.ranges`` key that sets ``param``'s range (its layer type; every type for ``global``)."""
    if param == GLOBAL_PARAM:
        return "<each type>"
    return site_types(trial).get(param, param)  # a site's type, or the type itself (granularity type)
