"""Which models can be packed, and the copy of one whose dropout rates are tensors."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from droptune.exceptions import PackingError
from droptune.nn import DropPath, VariationalDropout
from droptune.packing._attention import RateMultiheadAttention
from droptune.packing._dropout import (
    RATE_BUFFER,
    RateChannelDropout,
    RateDropout,
    RateDropPath,
    RateModule,
    RateVariationalDropout,
)
from droptune.packing._functional import install, sentinel
from droptune.sites import DropoutSite, discover

WORKERS_HINT = (
    "Run it unpacked (search.pack: 1), or put several trials on one GPU with --workers-per-gpu instead."
)

# Exact class -> its rate-tensor replacement. Subclasses of these are matched through isinstance.
CONVERTERS: dict[type[nn.Module], Callable[[Any], nn.Module]] = {
    nn.Dropout: lambda m: RateDropout(m.p),
    nn.Dropout1d: lambda m: RateChannelDropout(m.p, spatial_dims=1),
    nn.Dropout2d: lambda m: RateChannelDropout(m.p, spatial_dims=2),
    nn.Dropout3d: lambda m: RateChannelDropout(m.p, spatial_dims=3),
    VariationalDropout: lambda m: RateVariationalDropout(m.p),
    DropPath: lambda m: RateDropPath(m.drop_prob),
    nn.MultiheadAttention: RateMultiheadAttention.from_module,
}

# Lightning hooks that change how a step is taken: packed training does not call them.
_STEP_HOOKS = (
    "optimizer_step",
    "configure_gradient_clipping",
    "on_before_optimizer_step",
    "backward",
)


def check_packable(model: nn.Module) -> None:
    """Refuse, up front, models that a vmapped population cannot train faithfully.

    Raises:
        PackingError: For BatchNorm (running statistics are state that vmap cannot
            update per member), recurrent layers (cuDNN RNNs have no vmap rule),
            dropout kinds without a rate-tensor version, or a LightningModule that
            takes its own optimisation steps.

    Example:
        >>> check_packable(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        Traceback (most recent call last):
        ...
        droptune.exceptions.PackingError: Sequential.1 (BatchNorm1d) keeps running statistics, ...
    """
    for path, module in model.named_modules():
        where = f"{type(model).__name__}.{path}" if path else type(model).__name__
        if isinstance(module, nn.modules.batchnorm._BatchNorm) or (
            isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats
        ):
            raise PackingError(
                f"{where} ({type(module).__name__}) keeps running statistics, which a packed "
                f"(vmapped) population cannot update per member. {WORKERS_HINT}"
            )
        if isinstance(module, nn.RNNBase):
            raise PackingError(
                f"{where} ({type(module).__name__}): recurrent layers have no torch.vmap batching "
                f"rule (cuDNN RNN kernels), so they cannot be packed. {WORKERS_HINT}"
            )
        if isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
            raise PackingError(
                f"{where} ({type(module).__name__}) has no rate-tensor version for packing; "
                f"packable dropouts: {', '.join(c.__name__ for c in CONVERTERS)}. {WORKERS_HINT}"
            )
    if isinstance(model, pl.LightningModule):
        if not model.automatic_optimization:
            raise PackingError(
                f"{type(model).__name__} uses manual optimisation (automatic_optimization = False); "
                f"packed training takes the optimiser steps itself. {WORKERS_HINT}"
            )
        overridden = [h for h in _STEP_HOOKS if getattr(type(model), h) is not getattr(pl.LightningModule, h)]
        if overridden:
            raise PackingError(
                f"{type(model).__name__} overrides {', '.join(overridden)}; packed training does not "
                f"call these hooks. {WORKERS_HINT}"
            )


def packable_copy(
    model: nn.Module, sites: Sequence[DropoutSite] | None = None
) -> tuple[nn.Module, dict[str, str]]:
    """Copy ``model`` with every dropout site replaced by its rate-tensor version.

    The original is not changed. Parameter and buffer names stay the same; each module
    site adds one buffer, ``<module path>.rate``. A rate held as a float attribute (a
    site found by a traced :func:`~droptune.discover`, e.g. Llama's
    ``self_attn.attention_dropout``) adds the buffer ``<module path>.rate_<attribute>``,
    and the attribute becomes a sentinel float that stands for it. So does the ``.p`` of
    each converted dropout, for code that reads it. Every forward pass of the copy then
    runs under :class:`~droptune.packing._functional.PackedDropoutMode`, which gives
    functional dropout and ``scaled_dot_product_attention`` calls fed by a sentinel the
    member's own rate; when ``sites`` come from a traced discovery and none is
    ``functional``, the copy runs without it (reading ``.p`` is then a PackingError).

    Args:
        model: The model (a LightningModule or any nn.Module).
        sites: Its dropout sites (discovered when None). All of the model's sites are
            converted; sites not listed keep their current rate.

    Returns:
        The converted copy and ``{site name: name of its rate buffer}``.

    Raises:
        PackingError: If the model cannot be packed (see :func:`check_packable`) or a
            site's module has no rate-tensor version.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
        >>> packed, buffers = packable_copy(net)
        >>> type(packed[1]).__name__, buffers, float(packed[1].rate)
        ('RateDropout', {'1': '1.rate'}, 0.5)
    """
    check_packable(model)
    packed = copy.deepcopy(model)
    buffers: dict[str, str] = {}
    # Untraced: every packable site (LayerDrop keeps the model's rate).
    chosen = sites if sites is not None else [s for s in discover(model) if s.layer_type not in _UNPACKABLE]
    by_name = {s.name: s for s in chosen}
    _refuse_unpackable(by_name.values())
    sentinels: dict[float, tuple[str, str]] = {}
    held = set()
    for site in discover(packed):
        if site.layer_type in _UNPACKABLE:  # not tuned (checked above): the model keeps its rate
            continue
        held.add(site.name)
        module = packed.get_submodule(site.module_path)
        replacement = _replacement(module, site)
        _set_submodule(packed, site.module_path, replacement)
        if isinstance(replacement, RateModule):
            replacement.sentinel = sentinel(len(sentinels))
            sentinels[replacement.sentinel] = (site.module_path, RATE_BUFFER)
        buffer = f"{site.module_path}.{RATE_BUFFER}" if site.module_path else RATE_BUFFER
        if site.name in by_name:
            buffers[site.name] = buffer
    for site in by_name.values():
        if site.name not in held:  # a float attribute handed to functional dropout
            name = _attribute_rate(packed, site)
            holder = packed.get_submodule(site.module_path)
            value = sentinel(len(sentinels))
            sentinels[value] = (site.module_path, name)
            setattr(holder, site.attr, value)
            buffers[site.name] = f"{site.module_path}.{name}" if site.module_path else name
    # The interception costs a Python call per op: only where a traced discovery saw code
    # hand a rate to functional dropout (or nothing was traced). Elsewhere `.p` is refused.
    # Sites left out of `sites` (not tuned) were not traced here: their `.p` may be read.
    if sites is None or any(s.functional for s in by_name.values()) or held - set(by_name):
        install(packed, sentinels)
    return packed, buffers


_UNPACKABLE = {
    "layerdrop": "LayerDrop skips a layer for every member at once",
    "patch": "PatchDropout changes the number of tokens, which members must share",
}


def _refuse_unpackable(sites: Any) -> None:
    """LayerDrop skips a layer for the whole batch, PatchDropout changes the sequence length,
    and a config key is one value for all members."""
    for site in sites:
        if site.layer_type in _UNPACKABLE or "." in site.attr:
            what = _UNPACKABLE.get(site.layer_type, "a config key holds one value for every member")
            raise PackingError(
                f"dropout site {site.name!r} cannot be packed: {what}, so members cannot differ there. "
                f"Leave it out (search.exclude: [{site.name!r}]). {WORKERS_HINT}"
            )


def _attribute_rate(packed: nn.Module, site: DropoutSite) -> str:
    """Register the rate buffer of an attribute site on its holder; return the buffer's name."""
    try:
        holder = packed.get_submodule(site.module_path)
    except AttributeError:
        holder = None
    if holder is None or not isinstance(getattr(holder, site.attr, None), float):
        raise PackingError(
            f"dropout site {site.name!r}: the model has no float attribute {site.attr!r} at "
            f"{site.module_path or 'its root'}; were the sites discovered on another model? {WORKERS_HINT}"
        )
    name = f"{RATE_BUFFER}_{site.attr}"
    holder.register_buffer(name, torch.tensor(float(getattr(holder, site.attr))))
    return name


def _replacement(module: nn.Module, site: DropoutSite) -> nn.Module:
    convert = CONVERTERS.get(type(module))
    if convert is None:
        convert = next((c for kind, c in CONVERTERS.items() if isinstance(module, kind)), None)
    if convert is None and site.attr in (
        "drop_prob",
        "p",
    ):  # timm DropPath, torchvision StochasticDepth
        if "DropBlock" in type(module).__name__:
            convert = None
        else:
            rate = float(getattr(module, site.attr))
            return RateDropPath(
                rate,
                scale_by_keep=bool(getattr(module, "scale_by_keep", True)),
                per_batch=getattr(module, "mode", "row") == "batch",
            ).train(module.training)
    if convert is None:
        raise PackingError(
            f"dropout site {site.name!r} ({site.kind}) has no rate-tensor version for packing; "
            f"packable: {', '.join(c.__name__ for c in CONVERTERS)}, timm/torchvision stochastic depth. "
            f"{WORKERS_HINT}"
        )
    return convert(module).train(module.training)


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    if not path:
        raise PackingError("the model is itself a dropout module: there is nothing to pack around it.")
    parent_path, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent_path), name, module)
