"""Which models can be packed, and the copy of one whose dropout rates are tensors."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
from torch import nn

from droptune.exceptions import PackingError
from droptune.nn import DropPath, VariationalDropout
from droptune.packing._attention import RateMultiheadAttention
from droptune.packing._dropout import (
    RATE_BUFFER,
    RateChannelDropout,
    RateDropout,
    RateDropPath,
    RateVariationalDropout,
)
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

    The original is not changed. Parameter and buffer names stay the same; each site
    adds one buffer, ``<module path>.rate``.

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
    by_name = {s.name: s for s in (sites if sites is not None else discover(model))}
    for site in discover(packed):
        module = packed.get_submodule(site.module_path)
        replacement = _replacement(module, site)
        _set_submodule(packed, site.module_path, replacement)
        buffer = f"{site.module_path}.{RATE_BUFFER}" if site.module_path else RATE_BUFFER
        if site.name in by_name:
            buffers[site.name] = buffer
    return packed, buffers


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
