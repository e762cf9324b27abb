"""Words for a confirmed study (``droptune confirm``): which configuration is kept, and its spread."""

from __future__ import annotations

import optuna

from droptune.record import confirmed_finalists


def confirmed_note(study: optuna.Study) -> str | None:
    """One sentence on a study's confirmed finalists, or None when it was not confirmed.

    Example:
        >>> study = optuna.create_study()
        >>> study.set_user_attr("confirmed", {"seeds": 5, "finalists": [
        ...     {"trial": 7, "n": 5, "value_mean": 0.31, "value_sd": 0.02, "gap_mean": 0.05, "gap_sd": 0.01},
        ...     {"trial": 2, "n": 5, "value_mean": 0.33, "value_sd": 0.03, "gap_mean": 0.04, "gap_sd": 0.01,
        ...      "baseline": "no_dropout"}]})
        >>> print(confirmed_note(study))  # doctest: +NORMALIZE_WHITESPACE
        confirmed: the best is trial 7, the best mean over 5 fresh seeds among 2 finalists retrained
        (objective 0.31 ± 0.02, gap 0.05 ± 0.01; then trial 2 (no dropout): 0.33 ± 0.03). Its rates are
        the ones exported; a single trial's value is partly its seed's luck.
    """
    finalists = confirmed_finalists(study.user_attrs)
    if not finalists:
        return None
    best, rest = finalists[0], finalists[1:]
    # The next two, and every baseline: how the kept rates compare with no dropout is the question.
    shown = [f for i, f in enumerate(rest) if i < 2 or f.get("baseline")]
    after = "; then " + ", ".join(f"{_name(f)}: {_pm(f, 'value')}" for f in shown) if shown else ""
    return (
        f"confirmed: the best is {_name(best)}, the best mean over {best['n']} fresh seeds among "
        f"{len(finalists)} finalists retrained (objective {_pm(best, 'value')}, gap {_pm(best, 'gap')}{after}). "
        "Its rates are the ones exported; a single trial's value is partly its seed's luck."
    )


_BASELINE_NAMES = {"no_dropout": "no dropout", "prior": "the textbook prior"}


def _name(finalist: dict[str, object]) -> str:
    kind = finalist.get("baseline")
    label = _BASELINE_NAMES.get(str(kind), str(kind)) if kind else None
    return f"trial {finalist['trial']}" + (f" ({label})" if label else "")


def _pm(finalist: dict[str, object], key: str) -> str:
    mean, sd = finalist.get(f"{key}_mean"), finalist.get(f"{key}_sd")
    if not isinstance(mean, (int, float)):
        return "n/a"
    return f"{mean:.4g} ± {sd:.2g}" if isinstance(sd, (int, float)) else f"{mean:.4g}"
