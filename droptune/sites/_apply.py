"""Read and set the rates of a model's dropout sites."""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from droptune.exceptions import ConfigError, SiteError
from droptune.sites._discover import discover
from droptune.sites._names import attribute_site, mismatch_hints, rename
from droptune.sites._rates import set_rate

RatesLike = Mapping[str, float] | str | os.PathLike[str]


def get_rates(model: nn.Module, example_input: Any = None) -> dict[str, float]:
    """Return ``{site name: rate}`` for every dropout site, in :func:`discover` order.

    With ``example_input``, rates held as float attributes are included (see
    :func:`discover`).

    Example:
        >>> get_rates(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.3)))
        {'1': 0.3}
    """
    return {site.name: site.rate for site in discover(model, example_input)}


def apply_rates(
    model: nn.Module,
    rates: RatesLike,
    *,
    strict: bool = True,
    prefix: str = "",
    strip_prefix: str = "",
) -> nn.Module:
    """Set the drop probabilities of ``model``'s dropout sites.

    Everything is checked before anything is set, so a call that raises leaves the
    model as it was.

    Args:
        model: The model to change in place.
        rates: ``{site name: rate}``, or the path of a YAML/JSON file written by
            ``droptune export`` (its ``rates`` mapping is used) or holding a plain
            mapping.
        strict: Require a rate for every site of the model (default), for a mapping as
            for a file: a site left out is an error listing the missing sites, never a
            site silently left at its old rate. False sets only the sites given.
        prefix: Put before every name of ``rates`` (rates exported from a bare
            backbone, applied to a wrapper holding it as ``self.net``: ``"net."``).
        strip_prefix: Take off the names that start with it, before ``prefix`` is put
            on (rates exported from the wrapper, applied to the bare backbone).

    A name may also be a rate held as a float attribute (``module path.attribute``, as
    a traced :func:`discover` names it) or a key of the config object a module holds
    (``config.hidden_dropout``, ``model.config.layerdrop``): it is set like any other site.

    Returns:
        ``model``, for chaining.

    Raises:
        SiteError: If a name is not a site of the model, a site is missing under
            ``strict``, or a rate is not a probability in [0, 1).
        ConfigError: If ``rates`` is neither a mapping nor a path, or the file cannot
            be read or holds no mapping of rates.

    Example:
        >>> net = nn.Sequential(nn.Dropout(0.2), nn.Linear(2, 2), nn.Dropout(0.5))
        >>> _ = apply_rates(net, {"0": 0.0, "2": 0.1})
        >>> net[2].p
        0.1
        >>> _ = apply_rates(net, {"2": 0.3}, strict=False)  # only some sites
        >>> net[0].p, net[2].p
        (0.0, 0.3)
    """
    source = "rates"
    if isinstance(rates, (str, os.PathLike)):
        source = str(rates)
        rates = load_rates(rates)
    elif not isinstance(rates, Mapping):
        raise ConfigError(
            "apply_rates: rates must be a mapping {site name: rate} or the path of a YAML/JSON "
            f"file; got {type(rates).__name__}."
        )
    rates = rename(rates, prefix=prefix, strip_prefix=strip_prefix)
    sites = {site.name: site for site in discover(model)}
    _check(rates, sites, strict=strict, source=source, model=model)
    for name, rate in rates.items():
        site = sites[name]
        set_rate(site.module(model), site.attr, float(rate))
    return model


def load_rates(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read ``{site name: rate}`` from an exported YAML/JSON config or a plain mapping file.

    An exported config holds the mapping under ``rates:``; any other file must be the
    mapping itself. Integer keys (YAML reads an unquoted ``0:`` as an int) are taken as
    the names they spell; rates are checked against a model by :func:`apply_rates`.

    Raises:
        ConfigError: If the file cannot be read or parsed, holds no mapping of rates, or
            a key is not a site name.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "best.yaml"
        >>> _ = path.write_text("study: demo\\nrates:\\n  head.2: 0.3\\n  0: 0.1\\n")
        >>> load_rates(path)
        {'head.2': 0.3, '0': 0.1}
    """
    from droptune._io import read_text_file  # a binary or non-UTF-8 file: one message

    path = Path(path)
    text = read_text_file(path, what="rates file")
    is_json = path.suffix.lower() == ".json"
    try:
        data: Any = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path} is not valid {'JSON' if is_json else 'YAML'}: {err}") from None
    # A plain mapping may have a site named "rates" (a float): unwrap only a mapping.
    if isinstance(data, Mapping) and isinstance(data.get("rates"), Mapping):
        data = data["rates"]
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"{path} holds no rates: expected a mapping 'site name: rate', or an exported "
            "config with a 'rates' mapping."
        )
    rates = {}
    for key, rate in data.items():
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str):
            raise ConfigError(f"{path}: site names must be strings; got {key!r} (quote it).")
        rates[key] = rate
    return rates


def _check(
    rates: Mapping[Any, Any], sites: dict[str, Any], *, strict: bool, source: str, model: nn.Module
) -> None:
    unknown = []
    for name in rates:
        held = sites.get(name) or attribute_site(model, name)
        if held is None:
            unknown.append(name)
        else:
            sites.setdefault(name, held)  # a rate held as a float attribute
    missing = [name for name in sites if name not in rates] if strict else []
    if unknown or missing:
        hints = mismatch_hints(model, unknown, sites) if unknown else []
        parts = []
        if unknown:
            parts.append(f"unknown sites {unknown}{'' if hints else _suggest(unknown, list(sites))}")
        if missing:
            parts.append(
                f"missing sites {missing} (a complete config must give every site a rate; "
                "to set only some sites, pass strict=False)"
            )
        raise SiteError(
            f"{source} does not match the model's dropout sites: {'; '.join(parts + hints)}. "
            f"The model's sites are: {list(sites) or _NONE}."
        )
    for name, rate in rates.items():
        if not _is_probability(rate):
            raise SiteError(
                f"{source}: rate of site {name!r} must be a drop probability, a number in "
                f"[0, 1); got {rate!r}."
            )


_NONE = "none among its modules (a rate held as a float attribute is named 'module path.attribute')"


def _is_probability(rate: Any) -> bool:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        return False
    value = float(rate)
    return not math.isnan(value) and 0.0 <= value < 1.0


def _suggest(unknown: list[Any], valid: list[str]) -> str:
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), valid, n=1)
        if close:
            hints.append(f"{name!r} -> {close[0]!r}?")
    return f" (did you mean {', '.join(hints)})" if hints else ""
