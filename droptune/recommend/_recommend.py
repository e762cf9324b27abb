"""One recommended dropout rate per layer type (or per site), with the evidence behind it.

For each study, its complete trials are ranked (feasible first, then by value) and the
top ``top`` fraction of them, at least :data:`MIN_TRIALS`, is kept. The rates those trials
used are pooled over all the studies given (several models tuned separately), per layer
type: the recommendation is their median and ``low``/``high`` their interquartile range.
Ranking happens within each study, because values of different models do not compare.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from droptune.exceptions import ConfigError, StudyError
from droptune.recommend._importance import variable_importances
from droptune.record import best_trial, rank_trials, site_rates, site_types, type_rates
from droptune.sites import LAYER_TYPES
from droptune.space import GLOBAL_PARAM, PRIORS, SCALE_PREFIX, UNTIED_SUFFIX

log = logging.getLogger(__name__)

MIN_TRIALS = 3
BY = ("type", "site")


@dataclass(frozen=True)
class Recommendation:
    """The recommended rate of one layer type.

    Attributes:
        layer_type: One of :data:`droptune.LAYER_TYPES`.
        recommended: Median rate over the top trials (drop probability in [0, 1)).
        low: 25th percentile of those rates.
        high: 75th percentile of those rates.
        best: Rate in the best trial (the median over the studies' best trials when pooled).
        prior: The textbook rate of this layer type (DESIGN.md).
        importance: Share of the objective's variation due to this type's variables
            (optuna.importance, normalised to sum to 1 over all variables), or None when
            it cannot be computed.
        n_trials: Trials behind ``recommended``.
        sites: Names of the sites of this type.
    """

    layer_type: str
    recommended: float
    low: float
    high: float
    best: float
    prior: float
    importance: float | None
    n_trials: int
    sites: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON/YAML: exactly the attributes, rates rounded to 4 decimals."""
        return _plain(asdict(self))


@dataclass(frozen=True)
class SiteRecommendation:
    """The recommended rate of one dropout site (``droptune recommend --by site``).

    Attributes are those of :class:`Recommendation`, for a single ``site`` of type
    ``layer_type``; ``importance`` is that of the variable setting the site (shared by
    all the sites tied to one variable with granularity ``type``, ``coarse-to-fine`` or
    ``global``).
    """

    site: str
    layer_type: str
    recommended: float
    low: float
    high: float
    best: float
    prior: float
    importance: float | None
    n_trials: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON/YAML: exactly the attributes, rates rounded to 4 decimals."""
        return _plain(asdict(self))


def recommend(
    studies: optuna.Study | Sequence[optuna.Study],
    *,
    top: float = 0.2,
    by: Literal["type", "site"] = "type",
) -> list[Recommendation] | list[SiteRecommendation]:
    """Recommend a dropout rate per layer type (or per site), pooled over ``studies``.

    Args:
        studies: One study or several (e.g. several models tuned separately).
        top: Fraction of each study's complete trials, best first, that the
            recommendation is drawn from; in (0, 1], default 0.2. At least
            :data:`MIN_TRIALS` trials are used.
        by: ``type`` (one recommendation per layer type) or ``site``.

    Returns:
        One recommendation per layer type (in :data:`droptune.LAYER_TYPES` order) or per
        site (in the model's order).

    Raises:
        StudyError: If a study has fewer than :data:`MIN_TRIALS` complete trials.
        ConfigError: If ``top`` or ``by`` is invalid, or no study is given.
    """
    items, notes = compute(studies, top=top, by=by)
    for note in notes:
        log.warning("%s", note)
    return items


def compute(
    studies: optuna.Study | Sequence[optuna.Study],
    *,
    top: float = 0.2,
    by: str = "type",
) -> tuple[list[Any], list[str]]:
    """:func:`recommend`, returning the notes (why importance is missing...) instead of logging them."""
    studies = [studies] if isinstance(studies, optuna.Study) else list(studies)
    _check_args(studies, top, by)
    ranked = {s.study_name: rank_trials(s) for s in studies}
    too_few = {name: len(trials) for name, trials in ranked.items() if len(trials) < MIN_TRIALS}
    if too_few:
        listed = ", ".join(f"{name!r} has {n}" for name, n in too_few.items())
        raise StudyError(
            f"too few complete trials to recommend: {listed}; at least {MIN_TRIALS} are needed "
            "in each study. Run more trials (`droptune tune STUDY_FILE --n-trials N`)."
        )
    pool: dict[str, _Pool] = {}
    notes: list[str] = []
    for study in studies:
        trials = ranked[study.study_name]
        kept = trials[: n_kept(len(trials), top)]
        first = best_trial(study)  # a confirmed study's best mean over fresh seeds, else trials[0]
        importance, note = _importances_by(study, first, by)
        if note:
            notes.append(f"study {study.study_name!r}: {note}")
        for trial in kept:
            for key, rate in _rates(trial, by).items():
                pool.setdefault(key, _Pool()).rates.append(rate)
        for key, rate in _rates(first, by).items():
            entry = pool.setdefault(key, _Pool())
            entry.best.append(rate)
            entry.importance.append(importance.get(key))
            for site, layer_type in _sites(first, key, by).items():
                entry.sites.setdefault(site, layer_type)
    return [_make(key, pool[key], by) for key in _order(pool, by)], notes


def n_kept(n_complete: int, top: float) -> int:
    """How many of a study's ``n_complete`` trials, best first, a recommendation uses.

    Example:
        >>> n_kept(11, 0.2), n_kept(30, 0.2), n_kept(2, 0.2)
        (3, 6, 2)
    """
    return min(n_complete, max(MIN_TRIALS, math.ceil(top * n_complete)))


class _Pool:
    """Rates of one layer type (or site) gathered over the studies."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.best: list[float] = []
        self.importance: list[float | None] = []
        self.sites: dict[str, str] = {}


def _check_args(studies: list[optuna.Study], top: float, by: str) -> None:
    if not studies:
        raise ConfigError("recommend: give at least one study.")
    if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0.0 < top <= 1.0:
        raise ConfigError(f"top must be a fraction of the trials in (0, 1], e.g. 0.2; got {top!r}.")
    if by not in BY:
        raise ConfigError(f"by must be one of {', '.join(BY)}; got {by!r}.")
    names = [s.study_name for s in studies]
    if len(set(names)) < len(names):
        raise ConfigError(f"the same study is given twice: {names}.")


def _rates(trial: FrozenTrial, by: str) -> dict[str, float]:
    return type_rates(trial) if by == "type" else site_rates(trial)


def _sites(trial: FrozenTrial, key: str, by: str) -> dict[str, str]:
    types = site_types(trial)
    if by == "site":
        return {key: types.get(key, "dense")}
    return {site: t for site, t in types.items() if t == key}


def _importances_by(study: optuna.Study, best: FrozenTrial, by: str) -> tuple[dict[str, float | None], str | None]:
    """Importance per layer type (sum over the variables setting its sites) or per site."""
    per_variable, note = variable_importances(study)
    if per_variable is None:
        return {}, note
    setters = _setters(best)
    if setters is None:
        return {}, (
            f"the trials' parameters {sorted(best.params)} do not match their sites "
            f"{sorted(site_rates(best))}; importance is left out."
        )
    keys = _rates(best, by)
    out: dict[str, float | None] = {}
    for key in keys:
        variables = {setters[site] for site in _sites(best, key, by) if site in setters}
        values = [per_variable.get(v) for v in variables]
        out[key] = None if not values or None in values else float(sum(values))  # type: ignore[arg-type]
    return out, note


def _setters(trial: FrozenTrial) -> dict[str, str] | None:
    """``{site: Optuna variable setting it}``, inferred from the trial's params and sites.

    Granularity ``site`` names a variable after each site, ``type`` after each layer type
    and ``global`` has the one variable ``dropout`` (a site may itself be named "dropout");
    sites built at 0 beside a nonzero rate have their own ``<variable>@0``.
    ``coarse-to-fine`` trials are read as ``type``: their per-site scales exist only in
    the fine phase, so they never have an importance of their own.
    """
    params = {p for p in trial.params if not p.startswith(SCALE_PREFIX)}
    types = site_types(trial)
    rates = site_rates(trial)
    sites = list(rates)
    if params == set(sites):
        return {s: s for s in sites}
    untied = {p for p in params if p.endswith(UNTIED_SUFFIX)}
    if params - untied == {types.get(s) for s in sites}:
        setters = {s: types[s] for s in sites}
    elif params - untied == {GLOBAL_PARAM}:
        setters = dict.fromkeys(sites, GLOBAL_PARAM)
    else:
        return None
    for site, rate in rates.items():  # members built at 0 were tuned on their own, at the variable's value
        own = setters[site] + UNTIED_SUFFIX
        if own in untied and rate == trial.params[own]:
            setters[site] = own
    return setters


def _order(pool: dict[str, _Pool], by: str) -> list[str]:
    if by == "type":
        return sorted(pool, key=lambda t: (LAYER_TYPES.index(t) if t in LAYER_TYPES else len(LAYER_TYPES), t))
    return list(pool)


def _make(key: str, entry: _Pool, by: str) -> Recommendation | SiteRecommendation:
    low, median, high = (float(v) for v in np.percentile(entry.rates, [25, 50, 75]))
    known = [v for v in entry.importance if v is not None]
    importance = float(np.mean(known)) if known else None
    best = float(np.median(entry.best))
    if by == "type":
        return Recommendation(
            layer_type=key,
            recommended=median,
            low=low,
            high=high,
            best=best,
            prior=PRIORS.get(key, math.nan),
            importance=importance,
            n_trials=len(entry.rates),
            sites=tuple(entry.sites),
        )
    layer_type = entry.sites.get(key, "dense")
    return SiteRecommendation(
        site=key,
        layer_type=layer_type,
        recommended=median,
        low=low,
        high=high,
        best=best,
        prior=PRIORS.get(layer_type, math.nan),
        importance=importance,
        n_trials=len(entry.rates),
    )


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, float):
            value = round(value, 4)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out
