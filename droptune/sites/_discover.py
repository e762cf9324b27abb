"""Find every dropout site of an unmodified model."""

from __future__ import annotations

import fnmatch
import numbers
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from droptune.exceptions import ConfigError, DroptuneWarning
from droptune.nn import VariationalDropout
from droptune.sites._classify import (
    Verdict,
    fixed_type,
    is_stochastic_depth,
    structural_type,
    traced_type,
)
from droptune.sites._rates import get_rate, is_config_attr, is_layerdrop, is_patch_dropout, layerdrop_attrs
from droptune.sites._site import LAYER_TYPES, DropoutSite
from droptune.sites._trace import Call, TraceResult, trace
from droptune.sites._unreachable import Unreachable, unreachable_calls

# nn.Dropout, Dropout1d/2d/3d, AlphaDropout and FeatureAlphaDropout all derive from it.
_DROPOUT_MODULES = (nn.modules.dropout._DropoutNd, VariationalDropout)


@dataclass
class Discovery:
    """Everything :func:`find_sites` learnt about a model's dropout."""

    sites: list[DropoutSite]
    unreachable: list[Unreachable] = field(default_factory=list)
    trace: TraceResult | None = None

    def calls_of(self, site: DropoutSite) -> list[Call]:
        """The traced calls whose rate came from ``site`` (none without an example input)."""
        if self.trace is None:
            return []
        return [c for c in self.trace.calls if c.key == (site.module_path, site.attr)]


def discover(
    model: nn.Module,
    example_input: Any = None,
    *,
    layer_types: Mapping[str, str] | None = None,
) -> list[DropoutSite]:
    """Return the dropout sites of ``model`` in a stable order (module registration order).

    From structure alone: ``nn.Dropout`` and its 1d/2d/3d, alpha and feature-alpha
    kinds; the inter-layer ``dropout`` of ``nn.RNN``/``LSTM``/``GRU`` with
    ``num_layers > 1`` (a single-layer RNN's dropout does nothing, so it is skipped);
    the attention ``dropout`` of ``nn.MultiheadAttention``, hence everything inside
    Transformer layers; stochastic depth: a parameter-free leaf module with a float
    ``drop_prob`` (timm's DropPath; timm's DropBlock2d is found the same way, as
    spatial) or torchvision's ``StochasticDepth`` (its ``p``); droptune's
    :class:`~droptune.nn.VariationalDropout` and :class:`~droptune.nn.DropPath`;
    timm's ``PatchDropout`` (its ``prob``, type ``patch``); LayerDrop, a float attribute
    named ``layerdrop`` (``encoder_layerdrop``, ``layer_drop``...; type ``layerdrop``).

    With ``example_input``, one traced training-mode pass (no gradients; RNG state,
    modes, buffers and attributes restored) also finds rates held as plain float
    attributes and handed to functional dropout or attention (Llama's
    ``self_attn.attention_dropout``, timm's ``drop_rate`` in ``F.dropout``) or read from
    the model's config at forward time (Falcon's ``config.hidden_dropout``; Wav2Vec2's
    ``config.layerdrop``), proving each tie by changing the value and seeing the call's
    rate change (LayerDrop and PatchDropout are held at 0 instead); marks sites
    whose dropout never runs as not ``live``; and types every site by its role in the
    data flow (see :mod:`droptune.sites._classify`). A dropout call at a literal rate
    that no attribute holds is warned about (``DroptuneWarning``).

    A dropout module is named by its module path (``head.2``); a rate held as an
    attribute of another module by path + "." + attribute (``rnn.dropout``,
    ``blocks.1.drop_path.drop_prob``, ``model.layers.0.self_attn.attention_dropout``).
    A model that is itself a dropout module has the single site ``p``.

    Args:
        model: Any ``nn.Module`` (a LightningModule included).
        example_input: One input for ``model(...)`` (a tensor, a tuple of positional
            arguments or a dict of keyword arguments). Without it, registration order
            stands in for execution order and only module-held rates are found.
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
    return find_sites(model, example_input, layer_types=layer_types).sites


def find_sites(
    model: nn.Module,
    example_input: Any = None,
    *,
    layer_types: Mapping[str, str] | None = None,
    warn: bool = True,
) -> Discovery:
    """:func:`discover`, also returning the unreachable calls and the trace."""
    overrides = _check_overrides(layer_types)
    result = _trace(model, example_input, warn=warn) if example_input is not None else None
    entries = list(_walk(model))
    held = {(path, attr) for path, _, attr in entries}
    if result is not None:
        order = {path: i for i, (path, _) in enumerate(model.named_modules())}
        read = [key for key in result.reads if is_layerdrop(key[1])]  # config.layerdrop: no call carries it
        extra = dict.fromkeys(k for k in [*(c.key for c in result.calls), *read] if k is not None and k not in held)
        entries += [(path, model.get_submodule(path), attr) for path, attr in extra if path in order]
        entries.sort(key=lambda e: order[e[0]])  # stable: module sites stay first at a path
    matched: set[str] = set()
    sites = [_site(model, path, module, attr, result, overrides, matched, held) for path, module, attr in entries]
    _warn_unmatched(overrides, matched, sites)
    unreachable = unreachable_calls(model, result)
    if unreachable and warn:
        warnings.warn(
            f"{len(unreachable)} dropout call(s) run at a literal rate that no attribute holds, so "
            f"droptune cannot tune them: {'; '.join(u.describe() for u in unreachable)}. Hold the "
            "rate in an nn.Dropout or a float attribute of the module to make it tunable.",
            DroptuneWarning,
            stacklevel=3,
        )
    return Discovery(sites, unreachable, result)


# How to trace when the probed training-mode pass fails, in order, and what is lost.
_FALLBACKS = (
    (False, True, "rates were tied to attributes by equal value instead, which misses attributes at 0 "
     "or sharing a value"),
    (True, False, "it was traced in eval mode instead, which misses rates that code passes only in "
     "training (HF attention's dropout=)"),
)


def _site(
    model: nn.Module,
    path: str,
    module: nn.Module,
    attr: str,
    result: TraceResult | None,
    overrides: Mapping[str, str],
    matched: set[str],
    held: set[tuple[str, str]],
) -> DropoutSite:
    """The site of rate ``attr`` of ``module``: its type and why, liveness, whether code reads it."""
    calls = [c for c in result.calls if c.key == (path, attr)] if result is not None else []
    verdict = _verdict(model, path, module, attr, calls, result)
    name = _name(path, module, attr)
    for pattern, override in overrides.items():
        if fnmatch.fnmatchcase(name, pattern):
            verdict = Verdict(override, f"layer_types override {pattern!r}")
            matched.add(pattern)
            break
    live = result is None or path in result.ran or bool(calls) or (path, attr) in result.reads
    functional = any(c.module_path != path for c in calls) or (bool(calls) and (path, attr) not in held)
    kind = type(get_rate(module, "config") if is_config_attr(attr) else module).__name__
    rate = float(get_rate(module, attr))
    site = DropoutSite(name, path, attr, kind, verdict.layer_type, rate)  # type: ignore[arg-type]
    return replace(site, live=live, why=verdict.why, functional=functional)


def _trace(model: nn.Module, example_input: Any, *, warn: bool) -> TraceResult:
    """The probed training-mode pass, or the first fallback that runs (with a warning)."""
    try:
        return trace(model, example_input)
    except ConfigError as probed:
        first, cause = probed, probed.__cause__
    for probe, train, lost in _FALLBACKS:
        try:
            result = trace(model, example_input, probe=probe, train=train)
        except ConfigError:
            continue
        if warn:
            warnings.warn(
                f"discover: the training-mode forward pass with every float attribute at a probe value "
                f"failed ({cause!r}); {lost}.",
                DroptuneWarning,
                stacklevel=4,
            )
        return result
    raise first from cause


def _verdict(
    model: nn.Module, path: str, module: nn.Module, attr: str, calls: list[Call], result: TraceResult | None
) -> Verdict:
    fixed = fixed_type(module, attr)
    if fixed is not None:
        return fixed
    if calls and result is not None:
        key = (path, attr)
        return traced_type(
            calls[0],
            in_branch=key in result.branch,
            has_attention=result.has_attention,
            beside_attention=key in result.beside_attention,
        )
    return structural_type(model, path, module, attr)


def _walk(model: nn.Module) -> Iterator[tuple[str, nn.Module, str]]:
    """Yield (module path, module, attribute holding the rate) in registration order."""
    for path, module in model.named_modules():
        attr = _rate_attr(module)
        if attr is not None:
            yield path, module, attr
        for layerdrop in layerdrop_attrs(module):  # OPT, Whisper, BART: self.layerdrop
            yield path, module, layerdrop


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
    if is_patch_dropout(module) and _is_rate(getattr(module, "prob", None)):
        return "prob"
    return None


def _is_rate(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _name(path: str, module: nn.Module, attr: str) -> str:
    if isinstance(module, _DROPOUT_MODULES) and attr == "p":
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
            stacklevel=4,
        )
