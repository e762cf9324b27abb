"""Recommendations in words: the evidence behind each rate, and which figure to use where."""

from __future__ import annotations

from collections.abc import Sequence

from droptune.recommend._recommend import Recommendation


def evidence(rec: Recommendation, basis: str) -> str:
    """One sentence on where a layer type's recommended rate comes from.

    Example:
        >>> rec = Recommendation("dense", 0.31, 0.25, 0.36, 0.29, 0.5, 0.42, 3, ("fc.1",))
        >>> print(evidence(rec, "from the best 3 of 11 complete trials"))  # doctest: +NORMALIZE_WHITESPACE
        dense: 0.310, the median rate from the best 3 of 11 complete trials (middle half 0.250-0.360).
        The best trial used 0.290; the textbook prior is 0.50. This type explains 42 % of the objective's
        variation among the trials.
    """
    text = (
        f"{rec.layer_type}: {rec.recommended:.3f}, the median rate {basis} (middle half {rec.low:.3f}-{rec.high:.3f}). "
        f"The best trial used {rec.best:.3f}; the textbook prior is {rec.prior:.2f}."
    )
    if rec.importance is None:
        return text + " Its importance could not be measured."
    share = round(100 * rec.importance)
    return text + f" This type explains {share} % of the objective's variation among the trials."


def which_figure(items: Sequence[Recommendation]) -> str:
    """Which column to put in training code, and why (``recommend`` and ``export`` differ)."""
    differ = [r for r in items if f"{r.recommended:.3f}" != f"{r.best:.3f}"]
    example = ""
    if differ:
        r = differ[0]
        example = f" (here {r.layer_type}: rate {r.recommended:.3f}, best {r.best:.3f})"
    return (
        "Which figure to use: for this model, `droptune export STUDY -o best.yaml` and "
        "`droptune.apply_rates(model, \"best.yaml\")` in training code. That is the best trial's rate per site "
        "(the `best` column, per type the mean of its sites): a configuration that was trained and measured as a "
        f"whole. The `rate` column, the median of the top trials{example}, is the steadier estimate of what each "
        "layer type wants: use it to set one rate per layer type by hand, for a similar model, or when the "
        "warnings say the best trial may be luck."
    )
