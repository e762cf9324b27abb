"""Site names across models: attribute sites, wrapper prefixes, sites a zero rate removed."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from droptune.exceptions import ConfigError
from droptune.sites._rates import CONFIG, config_of, is_config_attr, is_layerdrop
from droptune.sites._site import DropoutSite, LayerType


def rename(rates: Mapping[Any, Any], *, prefix: str = "", strip_prefix: str = "") -> dict[Any, Any]:
    """``rates`` with ``strip_prefix`` taken off the names that start with it, then ``prefix`` put on.

    Example:
        >>> rename({"net.fc.drop": 0.1}, strip_prefix="net.", prefix="model.")
        {'model.fc.drop': 0.1}
    """
    for label, value in (("prefix", prefix), ("strip_prefix", strip_prefix)):
        if not isinstance(value, str):
            raise ConfigError(f"apply_rates: {label} must be a string; got {value!r}.")
    out = {}
    for name, rate in rates.items():
        if strip_prefix and isinstance(name, str) and name.startswith(strip_prefix):
            name = name[len(strip_prefix) :]
        out[f"{prefix}{name}" if isinstance(name, str) else name] = rate
    return out


def attribute_site(model: nn.Module, name: Any) -> DropoutSite | None:
    """The site ``name`` = module path + "." + attribute, when that module has a float attribute so named.

    Rates held as plain attributes (found by a traced :func:`~droptune.discover`) are set
    this way without tracing the model again.
    """
    if not isinstance(name, str):
        return None
    path, _, attr = name.rpartition(".")
    owner, _, head = path.rpartition(".")
    if head == CONFIG:  # a key of the config object a module holds: model.config.layerdrop
        path, attr = owner, f"{CONFIG}.{attr}"
    try:
        module = model.get_submodule(path)
    except AttributeError:
        return None
    if isinstance(module, (nn.RNNBase, nn.modules.dropout._DropoutNd)):
        return None  # structure decides these: a one-layer RNN's dropout does nothing
    holder = config_of(module) if is_config_attr(attr) else module
    key = attr.rpartition(".")[2]
    value = vars(holder).get(key) if holder is not None else None
    if key.startswith("_") or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    layer_type: LayerType = "layerdrop" if is_layerdrop(attr) else "dense"
    return DropoutSite(name, path, attr, type(holder).__name__, layer_type, float(value))


def mismatch_hints(model: nn.Module, unknown: Iterable[Any], sites: Iterable[str]) -> list[str]:
    """What to do about names the model lacks: a prefix to add or strip, a site a zero rate removed."""
    unknown = [str(n) for n in unknown]
    sites = list(sites)
    hints = []
    strip = _common_strip(unknown, set(sites), model)
    if strip:
        hints.append(f"the names carry the prefix {strip!r} that the model lacks: pass strip_prefix={strip!r}")
    add = _common_add(unknown, sites)
    if add:
        hints.append(f"the model's names start with {add!r}: pass prefix={add!r}")
    removed = [name for name in unknown if _identity_at(model, name)]
    if removed:
        hints.append(
            f"{removed} are nn.Identity in this model: it was built with a rate of 0 there (timm "
            "and torchvision put nn.Identity in place of DropPath or Dropout at rate 0), so it "
            "has no such site; build it with a nonzero rate (e.g. drop_path_rate > 0) to set one"
        )
    return hints


def _common_strip(unknown: list[str], sites: set[str], model: nn.Module) -> str:
    parts = unknown[0].split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i]) + "."
        rest = [n[len(prefix) :] for n in unknown if n.startswith(prefix)]
        if len(rest) == len(unknown) and all(r in sites or attribute_site(model, r) for r in rest):
            return prefix
    return ""


def _common_add(unknown: list[str], sites: list[str]) -> str:
    first = unknown[0]
    for site in sites:
        if site.endswith("." + first):
            prefix = site[: len(site) - len(first)]
            if all(prefix + n in sites for n in unknown):
                return prefix
    return ""


def _identity_at(model: nn.Module, name: str) -> bool:
    for path in (name, name.rpartition(".")[0]):
        try:
            if isinstance(model.get_submodule(path), nn.Identity):
                return True
        except AttributeError:
            continue
    return False
