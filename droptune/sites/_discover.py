"""Find every dropout site of an unmodified model."""

from __future__ import annotations

import fnmatch
import numbers
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from droptune.exceptions import ConfigError, DroptuneWarning
from droptune.nn import VariationalDropout
from droptune.sites._classify import (
    is_stochastic_depth,
    structural_type,
    trace_dropouts,
    traced_type,
)
from droptune.sites._site import LAYER_TYPES, DropoutSite

# nn.Dropout, Dropout1d/2d/3d, AlphaDropout and FeatureAlphaDropout all derive from it.
_DROPOUT_MODULES = (nn.modules.dropout._DropoutNd, VariationalDropout)


def discover(
    model: nn.Module,
    example_input: Any = None,
    *,
    layer_types: Mapping[str, str] | None = None,
) -> list[DropoutSite]:
    """Return the dropout sites of ``model`` in a stable order (module registration order).

    Found without changing the model: ``nn.Dropout`` and its 1d/2d/3d, alpha and
    feature-alpha kinds; the inter-layer ``dropout`` of ``nn.RNN``/``LSTM``/``GRU`` with
    ``num_layers > 1`` (a single-layer RNN's dropout does nothing, so it is skipped);
    the attention ``dropout`` of ``nn.MultiheadAttention``, hence everything inside
    Transformer layers; stochastic depth: a parameter-free leaf module with a float
    ``drop_prob`` (timm's DropPath; timm's DropBlock2d is found the same way, as
    spatial) or torchvision's ``StochasticDepth`` (its ``p``); droptune's
    :class:`~droptune.nn.VariationalDropout` and :class:`~droptune.nn.DropPath`.
    Dropout called functionally in ``forward`` with a literal rate
    (``F.dropout(x, 0.1)``) cannot be found: hold it in an ``nn.Dropout``.

    A dropout module is named by its module path (``head.2``); a rate held as an
    attribute of another module by path + "." + attribute (``rnn.dropout``,
    ``blocks.1.drop_path.drop_prob``). A model that is itself a dropout module has the
    single site ``p``.

    Layer types: a Dropout1d/2d/3d or FeatureAlphaDropout, or any dropout on conv
    feature maps, is ``spatial``; an RNN's dropout or a VariationalDropout
    ``recurrent``; anything inside ``nn.MultiheadAttention``, a Transformer layer or a
    module whose class name contains "Attention" ``attention``; a dropout on the model's
    input (nothing with parameters ran before it, norm layers aside) ``input``;
    stochastic depth ``residual``; any other ``dense``.

    Args:
        model: Any ``nn.Module`` (a LightningModule included).
        example_input: One input for ``model(...)`` (a tensor, a tuple of positional
            arguments or a dict of keyword arguments). When given, one forward pass in
            eval mode, without gradients, decides input/spatial/dense by what each
            dropout really receives; each module's train/eval mode is restored after.
            Without it, registration order stands in for execution order.
        layer_types: Optional overrides, site-name glob (``fnmatch``) -> layer type;
            the first matching glob wins. A glob that matches no site is warned about.

    Returns:
        The sites, each with a unique name, layer type and current rate.

    Raises:
        ConfigError: If an override is not a glob -> layer type mapping, names a layer
            type that does not exist, or the forward pass on ``example_input`` fails.

    Example:
        >>> net = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 4), nn.Dropout(0.5))
        >>> [(s.name, s.layer_type, s.rate) for s in discover(net)]
        [('0', 'input', 0.1), ('2', 'dense', 0.5)]
        >>> [s.layer_type for s in discover(net, layer_types={"2": "attention"})]
        ['input', 'attention']
    """
    overrides = _check_overrides(layer_types)
    found = list(_walk(model))
    traces = {}
    if example_input is not None:
        dropouts = {
            path: module for path, module, attr in found if isinstance(module, _DROPOUT_MODULES)
        }
        traces = trace_dropouts(model, dropouts, example_input)
    sites = []
    matched: set[str] = set()
    for path, module, attr in found:
        layer_type = traced_type(
            structural_type(model, path, module, attr), module, traces.get(path)
        )
        name = _name(path, module, attr)
        for pattern, override in overrides.items():
            if fnmatch.fnmatchcase(name, pattern):
                layer_type = override
                matched.add(pattern)
                break
        rate = float(getattr(module, attr))
        kind = type(module).__name__
        sites.append(DropoutSite(name, path, attr, kind, layer_type, rate))  # type: ignore[arg-type]
    _warn_unmatched(overrides, matched, sites)
    return sites


def _walk(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """Yield (module path, module, attribute holding the rate) in registration order."""
    for path, module in model.named_modules():
        attr = _rate_attr(module)
        if attr is not None:
            yield path, module, attr


def _rate_attr(module: nn.Module) -> str | None:
    if isinstance(module, _DROPOUT_MODULES):
        return "p"
    if isinstance(module, nn.RNNBase):
        return "dropout" if module.num_layers > 1 else None
    if isinstance(module, nn.MultiheadAttention):
        return "dropout"
    # Only a parameter-free leaf: a model or block that merely remembers a drop_prob
    # hyperparameter would be a site whose rate changes nothing.
    if (
        next(module.children(), None) is not None
        or next(module.parameters(recurse=False), None) is not None
    ):
        return None
    if _is_rate(getattr(module, "drop_prob", None)):
        return "drop_prob"
    if is_stochastic_depth(module) and _is_rate(getattr(module, "p", None)):
        return "p"
    return None


def _is_rate(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _name(path: str, module: nn.Module, attr: str) -> str:
    if isinstance(module, _DROPOUT_MODULES):
        return path or attr
    return f"{path}.{attr}" if path else attr


def _check_overrides(layer_types: Mapping[str, str] | None) -> dict[str, str]:
    if layer_types is None:
        return {}
    if not isinstance(layer_types, Mapping):
        raise ConfigError(
            f"layer_types must be a mapping of site-name glob -> layer type; got "
            f"{type(layer_types).__name__} {layer_types!r}."
        )
    for pattern, layer_type in layer_types.items():
        if not isinstance(pattern, str):
            raise ConfigError(f"layer type override: the glob must be a string; got {pattern!r}.")
        if layer_type not in LAYER_TYPES:
            raise ConfigError(
                f"layer type override {pattern!r}: {layer_type!r} is not a layer type; "
                f"valid: {', '.join(LAYER_TYPES)}."
            )
    return dict(layer_types)


def _warn_unmatched(
    overrides: Mapping[str, str], matched: set[str], sites: list[DropoutSite]
) -> None:
    unmatched = [pattern for pattern in overrides if pattern not in matched]
    if not unmatched:
        return
    # A glob shadowed by an earlier one still matches a site: not a typo, say nothing.
    names = [site.name for site in sites]
    typos = [p for p in unmatched if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if typos:
        warnings.warn(
            f"layer type overrides {typos} match no dropout site; the model's sites are: "
            f"{names or 'none'}.",
            DroptuneWarning,
            stacklevel=3,
        )
