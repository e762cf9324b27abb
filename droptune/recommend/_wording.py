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


def which_figure(items: Sequence[Recommendation], study: str = "STUDY") -> str:
    """One sentence: which column ``droptune export`` writes, and which ``--recommended`` does.

    Args:
        items: The recommendation per layer type.
        study: How to name the study in the commands (a study file or name).

    Example:
        >>> rec = Recommendation("dense", 0.233, 0.2, 0.3, 0.094, 0.5, 0.42, 3, ("fc.1",))
        >>> print(which_figure([rec]))  # doctest: +NORMALIZE_WHITESPACE
        To train with these rates: `droptune export STUDY -o rates.yaml` writes the `best` column (the best
        trial, site by site; here dense 0.094), `--recommended` the `rate` column on every site of its type
        (dense 0.233), steadier when a warning says the best trial may be luck; then
        `droptune.apply_rates(model, "rates.yaml")`.
    """
    differ = [r for r in items if f"{r.recommended:.3f}" != f"{r.best:.3f}"]
    shown = differ[0] if differ else (items[0] if items else None)
    best = f"; here {shown.layer_type} {shown.best:.3f}" if shown else ""
    rate = f" ({shown.layer_type} {shown.recommended:.3f})" if shown else ""
    return (
        f"To train with these rates: `droptune export {study} -o rates.yaml` writes the `best` column (the best "
        f"trial, site by site{best}), `--recommended` the `rate` column on every site of its type{rate}, steadier "
        'when a warning says the best trial may be luck; then `droptune.apply_rates(model, "rates.yaml")`.'
    )
