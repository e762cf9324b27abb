"""SearchSpace: which sites are tuned, as which Optuna variables, over which ranges."""

from __future__ import annotations

import fnmatch
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

import optuna

from droptune.exceptions import ConfigError
from droptune.sites import DropoutSite
from droptune.space._priors import PRIORS, RANGES

GLOBAL_PARAM = "dropout"


class SearchSpace:
    """Maps a model's dropout sites to Optuna variables and back.

    Granularity ``site`` gives one variable per site (named after the site), ``type`` one
    per layer type (sites of a type share it) and ``global`` one variable, ``dropout``,
    for every site. Sites not matched by ``include``, or matched by ``exclude``, keep the
    rate the model was built with.

    Args:
        granularity: ``site``, ``type`` or ``global``.
        ranges: ``{layer type: (low, high)}``, overriding :data:`RANGES`.
        include: Site-name globs to tune.
        exclude: Site-name globs never to tune.

    Example:
        >>> from torch import nn
        >>> from droptune import discover
        >>> sites = discover(nn.Sequential(nn.Linear(4, 4), nn.Dropout(), nn.Linear(4, 2)))
        >>> SearchSpace(granularity="type").prior_params(sites)
        {'dense': 0.5}
    """

    def __init__(
        self,
        *,
        granularity: Literal["site", "type", "global"] = "site",
        ranges: Mapping[str, tuple[float, float]] | None = None,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
    ) -> None:
        self.granularity = granularity
        self.ranges = {**RANGES, **(ranges or {})}
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def select(self, sites: Sequence[DropoutSite]) -> list[DropoutSite]:
        """Return the sites to tune, or raise ConfigError if there are none."""
        chosen = [
            s
            for s in sites
            if any(fnmatch.fnmatchcase(s.name, g) for g in self.include)
            and not any(fnmatch.fnmatchcase(s.name, g) for g in self.exclude)
        ]
        if not chosen:
            found = [s.name for s in sites]
            raise ConfigError(
                "no dropout site to tune: "
                + (
                    f"search.include/exclude match none of the model's sites {found}."
                    if found
                    else "the model has no dropout modules (nn.Dropout, RNN/attention dropout, "
                    "DropPath...); see the README on making dropout discoverable."
                )
            )
        return chosen

    def param_of(self, site: DropoutSite) -> str:
        """Name of the Optuna variable that sets ``site``."""
        if self.granularity == "site":
            return site.name
        if self.granularity == "type":
            return site.layer_type
        return GLOBAL_PARAM

    def bounds(self, param: str, sites: Sequence[DropoutSite]) -> tuple[float, float]:
        """Range of variable ``param``: its layer type's, or the widest one for ``global``."""
        types = {s.layer_type for s in sites if self.param_of(s) == param}
        lows, highs = zip(*(self.ranges[t] for t in types))
        return min(lows), max(highs)

    def params(self, sites: Sequence[DropoutSite]) -> dict[str, tuple[float, float]]:
        """``{variable: (low, high)}`` in site order."""
        names = dict.fromkeys(self.param_of(s) for s in sites)
        return {name: self.bounds(name, sites) for name in names}

    def suggest(self, trial: optuna.Trial, sites: Sequence[DropoutSite]) -> dict[str, float]:
        """Ask ``trial`` for one value per variable; return ``{site name: rate}``."""
        values = {name: trial.suggest_float(name, low, high) for name, (low, high) in self.params(sites).items()}
        return self.rates_from_params(values, sites)

    def rates_from_params(self, params: Mapping[str, float], sites: Sequence[DropoutSite]) -> dict[str, float]:
        """Turn Optuna parameters back into ``{site name: rate}``."""
        try:
            return {s.name: float(params[self.param_of(s)]) for s in sites}
        except KeyError as err:
            raise ConfigError(
                f"the study's trials have no variable {err.args[0]!r}: was it created with another "
                "granularity or model? Use a new study name."
            ) from None

    def prior_params(self, sites: Sequence[DropoutSite]) -> dict[str, float]:
        """The textbook rate of each variable (clipped to its range): the study's first trial."""
        out = {}
        for name, (low, high) in self.params(sites).items():
            priors = [PRIORS[s.layer_type] for s in sites if self.param_of(s) == name]
            out[name] = min(max(statistics.median(priors), low), high)
        return out
