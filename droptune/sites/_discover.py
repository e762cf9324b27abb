"""Find every dropout site of an unmodified model."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from droptune.exceptions import ConfigError
from droptune.nn import VariationalDropout
from droptune.sites._classify import structural_type, trace_dropouts, traced_type
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
    Transformer layers; any module with a float ``drop_prob`` (stochastic depth in the
    style of timm's DropPath); droptune's :class:`~droptune.nn.VariationalDropout` and
    :class:`~droptune.nn.DropPath`. Dropout called functionally in ``forward`` with a
    literal rate (``F.dropout(x, 0.1)``) cannot be found: hold it in an ``nn.Dropout``.

    Args:
        model: Any ``nn.Module`` (a LightningModule included).
        example_input: One input for ``model(...)`` (a tensor, a tuple of positional
            arguments or a dict of keyword arguments). When given, one forward pass in
            eval mode decides input/spatial/dense by what each dropout really receives;
            without it, the module structure decides as well as it can.
        layer_types: Optional overrides, site-name glob -> layer type; the first
            matching glob wins.

    Returns:
        The sites, each with a unique name, layer type and current rate.

    Raises:
        ConfigError: If an override names a layer type that does not exist.

    Example:
        >>> net = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 4), nn.Dropout(0.5))
        >>> [(s.name, s.layer_type, s.rate) for s in discover(net)]
        [('0', 'input', 0.1), ('2', 'dense', 0.5)]
    """
    overrides = _check_overrides(layer_types or {})
    found = list(_walk(model))
    traces = {}
    if example_input is not None:
        dropouts = {path: module for path, module, attr in found if isinstance(module, _DROPOUT_MODULES)}
        traces = trace_dropouts(model, dropouts, example_input)
    sites = []
    for path, module, attr in found:
        name = path if attr == "p" and isinstance(module, _DROPOUT_MODULES) else _join(path, attr)
        layer_type = traced_type(structural_type(model, path, module, attr), module, traces.get(path))
        for pattern, override in overrides.items():
            if fnmatch.fnmatchcase(name, pattern):
                layer_type = override
                break
        rate = float(getattr(module, attr))
        sites.append(DropoutSite(name, path, attr, type(module).__name__, layer_type, rate))  # type: ignore[arg-type]
    return sites


def _walk(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    for path, module in model.named_modules():
        if isinstance(module, _DROPOUT_MODULES):
            yield path, module, "p"
        elif isinstance(module, nn.RNNBase):
            if module.num_layers > 1:
                yield path, module, "dropout"
        elif isinstance(module, nn.MultiheadAttention):
            yield path, module, "dropout"
        elif isinstance(getattr(module, "drop_prob", None), float):
            yield path, module, "drop_prob"


def _join(path: str, attr: str) -> str:
    return f"{path}.{attr}" if path else attr


def _check_overrides(layer_types: Mapping[str, str]) -> dict[str, str]:
    for pattern, layer_type in layer_types.items():
        if layer_type not in LAYER_TYPES:
            raise ConfigError(
                f"layer type override {pattern!r}: {layer_type!r} is not a layer type; "
                f"valid: {', '.join(LAYER_TYPES)}."
            )
    return dict(layer_types)
