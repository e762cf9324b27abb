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
# coarse-to-fine: a site's rate is its type's rate times 2**scale, scale in [-1, 1].
SCALE_PREFIX = "scale:"
SCALE_RANGE = (-1.0, 1.0)
# A tied group's members built at 0 get a variable of their own: "<variable>@0".
UNTIED_SUFFIX = "@0"

Granularity = Literal["site", "type", "coarse-to-fine", "global"]


class SearchSpace:
    """Maps a model's dropout sites to Optuna variables and back.

    Granularity ``site`` gives one variable per site (named after the site), ``type`` one
    per layer type (sites of a type share it) and ``global`` one variable, ``dropout``,
    for every site. ``coarse-to-fine`` ties the sites of a type for the first
    ``coarse_trials`` trials, then also gives each site of a type that has several a
    variable ``scale:<site>`` in [-1, 1]: the site's rate is the type's rate times
    ``2**scale``, clipped to the type's range. The type variables keep their history
    across the switch, so the per-site refinement starts from the tuned type rates.
    Sites not matched by ``include``, or matched by ``exclude``, keep the rate the model
    was built with, and so do sites whose dropout never runs (``live`` False): they are
    no search variable.

    Tied sites keep the model's own schedule: when the sites sharing a variable were
    built with different rates (timm and torchvision raise stochastic depth linearly with
    depth), the variable is the largest rate of the group and each site gets its share,
    ``value * rate / max(rates)``, instead of one flat rate. A group built with one rate
    (or all at 0) takes the value as it is. A zero share would freeze a knob at 0 (Whisper
    built with ``dropout=0.1, activation_dropout=0.0`` ties both under ``hidden``), so the
    members built at 0 of a group whose other members share one nonzero rate are untied:
    they get a variable of their own, ``<variable>@0`` (``hidden@0``), searched over the
    same range; :meth:`notes` says so. Only a schedule keeps its zeros (stochastic depth,
    or several distinct nonzero rates: a ramp that starts at 0).

    Args:
        granularity: ``site``, ``type``, ``coarse-to-fine`` or ``global``.
        ranges: ``{layer type: (low, high)}``, overriding :data:`RANGES`.
        include: Site-name globs to tune.
        exclude: Site-name globs never to tune.
        coarse_trials: With ``coarse-to-fine``, how many trials (by trial number) tie the
            sites of each type before per-site scales are searched.

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
        granularity: Granularity = "type",
        ranges: Mapping[str, tuple[float, float]] | None = None,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        coarse_trials: int = 20,
    ) -> None:
        self.granularity = granularity
        self.coarse_trials = coarse_trials
        self.ranges = {**RANGES, **(ranges or {})}
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def select(self, sites: Sequence[DropoutSite]) -> list[DropoutSite]:
        """Return the live sites to tune, or raise ConfigError if there are none."""
        chosen = [
            s
            for s in sites
            if s.live
            and any(fnmatch.fnmatchcase(s.name, g) for g in self.include)
            and not any(fnmatch.fnmatchcase(s.name, g) for g in self.exclude)
        ]
        if not chosen and sites and not any(s.live for s in sites):
            raise ConfigError(
                f"no dropout site to tune: none of the model's sites {[s.name for s in sites]} ran "
                "in the forward pass on the example input."
            )
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
        """Name of the Optuna variable that sets ``site`` by its granularity (before untying zeros)."""
        if self.granularity == "site":
            return site.name
        if self.granularity in ("type", "coarse-to-fine"):
            return site.layer_type
        return GLOBAL_PARAM

    def variables(self, sites: Sequence[DropoutSite]) -> dict[str, str]:
        """``{site name: the Optuna variable that sets it}``, zero members untied (see the class)."""
        out = {s.name: self.param_of(s) for s in sites}
        for param, members in self._groups(sites).items():
            if _freezes_zeros(members):
                out.update({s.name: param + UNTIED_SUFFIX for s in members if s.rate == 0.0})
        return out

    def notes(self, sites: Sequence[DropoutSite]) -> list[str]:
        """One line per untied group of zero members: what ``tune`` and ``inspect`` tell the user."""
        variables = self.variables(sites)
        out = []
        for param, members in self._groups(sites).items():
            zeros = [s.name for s in members if variables[s.name] != param]
            if zeros:
                low, high = self.bounds(param + UNTIED_SUFFIX, sites)
                out.append(
                    f"{param}: {len(zeros)} site(s) built at rate 0 ({', '.join(zeros)}) are untied from the "
                    f"others (built at {max(s.rate for s in members):g}) and tuned on their own as "
                    f"{param + UNTIED_SUFFIX!r} over {low:g}-{high:g}; a share of a tied rate would keep them at 0. "
                    f"Leave them out with search.exclude to keep them at 0."
                )
        return out

    def _groups(self, sites: Sequence[DropoutSite]) -> dict[str, list[DropoutSite]]:
        groups: dict[str, list[DropoutSite]] = {}
        if self.granularity != "site":
            for s in sites:
                groups.setdefault(self.param_of(s), []).append(s)
        return groups

    def bounds(self, param: str, sites: Sequence[DropoutSite]) -> tuple[float, float]:
        """Range of variable ``param``: its layer type's, or the widest one for ``global``."""
        variables = self.variables(sites)
        types = {s.layer_type for s in sites if variables[s.name] == param}
        lows, highs = zip(*(self.ranges[t] for t in types))
        return min(lows), max(highs)

    def params(self, sites: Sequence[DropoutSite]) -> dict[str, tuple[float, float]]:
        """``{variable: (low, high)}`` in site order."""
        names = dict.fromkeys(self.variables(sites).values())
        return {name: self.bounds(name, sites) for name in names}

    def suggest(self, trial: optuna.Trial, sites: Sequence[DropoutSite]) -> dict[str, float]:
        """Ask ``trial`` for one value per variable; return ``{site name: rate}``."""
        values = {name: trial.suggest_float(name, low, high) for name, (low, high) in self.params(sites).items()}
        if self.granularity == "coarse-to-fine" and trial.number >= self.coarse_trials:
            for site in self.scaled_sites(sites):
                name = SCALE_PREFIX + site.name
                values[name] = trial.suggest_float(name, *SCALE_RANGE)
        return self.rates_from_params(values, sites)

    def scaled_sites(self, sites: Sequence[DropoutSite]) -> list[DropoutSite]:
        """With ``coarse-to-fine``, the sites that get a scale: those whose type has several."""
        if self.granularity != "coarse-to-fine":
            return []
        counts: dict[str, int] = {}
        for s in sites:
            counts[s.layer_type] = counts.get(s.layer_type, 0) + 1
        return [s for s in sites if counts[s.layer_type] > 1]

    def rates_from_params(self, params: Mapping[str, float], sites: Sequence[DropoutSite]) -> dict[str, float]:
        """Turn Optuna parameters back into ``{site name: rate}``."""
        try:
            shares = self.shares(sites)
            variables = self.variables(sites)
            rates = {s.name: float(params[variables[s.name]]) * shares[s.name] for s in sites}
        except KeyError as err:
            raise ConfigError(
                f"the study's trials have no variable {err.args[0]!r}: was it created with another "
                "granularity or model? Use a new study name."
            ) from None
        for site in self.scaled_sites(sites):
            scale = params.get(SCALE_PREFIX + site.name)
            if scale is not None:
                low, high = self.ranges[site.layer_type]
                rates[site.name] = min(max(rates[site.name] * 2.0 ** float(scale), low), high)
        return rates

    def shares(self, sites: Sequence[DropoutSite]) -> dict[str, float]:
        """Each site's share of its variable: ``rate / max(rate)`` over the sites tied to it.

        1.0 for every site of a group built with a single rate (or all at 0), for untied
        zero members, and always with ``site`` granularity.
        """
        variables = self.variables(sites)
        groups: dict[str, list[float]] = {}
        for s in sites:
            groups.setdefault(variables[s.name], []).append(s.rate)
        out = {}
        for s in sites:
            rates = groups[variables[s.name]]
            top = max(rates)
            out[s.name] = s.rate / top if top > 0 and min(rates) != top else 1.0
        return out

    def prior_params(self, sites: Sequence[DropoutSite]) -> dict[str, float]:
        """The textbook rate of each variable (clipped to its range): the study's first trial."""
        out = {}
        variables = self.variables(sites)
        for name, (low, high) in self.params(sites).items():
            priors = [PRIORS[s.layer_type] for s in sites if variables[s.name] == name]
            out[name] = min(max(statistics.median(priors), low), high)
        return out

    def baseline_params(self, sites: Sequence[DropoutSite]) -> dict[str, float]:
        """Each variable at the bottom of its range (0 by default: no dropout): the study's second trial.

        Enqueued beside the prior so that a study always measures "no dropout at all" and
        never hands over something worse than it without the numbers showing it.
        """
        return {name: low for name, (low, _) in self.params(sites).items()}


def _freezes_zeros(members: Sequence[DropoutSite]) -> bool:
    """Whether tying ``members`` would hold some at 0: built at 0 beside one nonzero rate, no schedule."""
    nonzero = {s.rate for s in members if s.rate > 0.0}
    if len(nonzero) != 1 or all(s.rate > 0.0 for s in members):
        return False
    return not any(s.layer_type == "residual" for s in members)  # stochastic depth ramps from 0
