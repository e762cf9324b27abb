"""Read and set the rates of a model's dropout sites."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from droptune.exceptions import ConfigError, SiteError
from droptune.sites._discover import discover

RatesLike = Mapping[str, float] | str | os.PathLike[str]


def get_rates(model: nn.Module) -> dict[str, float]:
    """Return ``{site name: rate}`` for every dropout site, in :func:`discover` order.

    Example:
        >>> get_rates(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.3)))
        {'1': 0.3}
    """
    return {site.name: site.rate for site in discover(model)}


def apply_rates(model: nn.Module, rates: RatesLike, *, strict: bool | None = None) -> nn.Module:
    """Set the drop probabilities of ``model``'s dropout sites.

    Everything is checked before anything is set, so a call that raises leaves the
    model as it was.

    Args:
        model: The model to change in place.
        rates: ``{site name: rate}``, or the path of a YAML/JSON file written by
            ``droptune export`` (its ``rates`` mapping is used) or holding a plain
            mapping.
        strict: Require a rate for every site of the model. Defaults to True for a
            file (an exported config is complete) and False for a mapping.

    Returns:
        ``model``, for chaining.

    Raises:
        SiteError: If a name is not a site of the model, a site is missing under
            ``strict``, or a rate is not a probability in [0, 1).
        ConfigError: If the file cannot be read or holds no mapping of rates.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
        >>> _ = apply_rates(net, {"1": 0.1})
        >>> net[1].p
        0.1
    """
    source = "rates"
    if isinstance(rates, (str, os.PathLike)):
        source = str(rates)
        rates = load_rates(rates)
        strict = True if strict is None else strict
    sites = {site.name: site for site in discover(model)}
    _check(rates, sites, strict=bool(strict), source=source)
    for name, rate in rates.items():
        site = sites[name]
        setattr(site.module(model), site.attr, float(rate))
    return model


def load_rates(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read ``{site name: rate}`` from an exported YAML/JSON config or a plain mapping file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read rates file {path}: {err.strerror}.") from None
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if isinstance(data, Mapping) and "rates" in data:
        data = data["rates"]
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{path} holds no rates: expected a mapping 'site name: rate', or an exported "
            "config with a 'rates' mapping."
        )
    return dict(data)


def _check(rates: Mapping[str, Any], sites: Mapping[str, Any], *, strict: bool, source: str) -> None:
    unknown = [name for name in rates if name not in sites]
    missing = [name for name in sites if name not in rates] if strict else []
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown sites {unknown}")
        if missing:
            parts.append(f"missing sites {missing}")
        raise SiteError(
            f"{source} does not match the model's dropout sites: {'; '.join(parts)}. "
            f"The model's sites are: {list(sites) or 'none'}."
        )
    for name, rate in rates.items():
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or math.isnan(rate)
            or not 0.0 <= rate < 1.0
        ):
            raise SiteError(f"{source}: rate of site {name!r} must be a probability in [0, 1); got {rate!r}.")
