"""Layer-type inference for dropout sites: structure first, a traced forward pass when given.

Structure alone settles most types (Dropout2d is spatial, an LSTM's dropout recurrent, a
DropPath residual, anything inside attention or a Transformer layer attention). What it
cannot settle for sure is whether a plain ``nn.Dropout`` sees the raw input, conv feature
maps or dense features; a forward pass on one example, with hooks recording the order in
which modules run and the rank of each dropout's input, settles that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from droptune.exceptions import ConfigError
from droptune.nn import VariationalDropout

_SPATIAL_KINDS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_ATTENTION_KINDS = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
_CONV_KINDS = (nn.modules.conv._ConvNd,)
# Modules with parameters that rescale features without mixing them: a dropout after a
# norm layer sees what the norm layer saw (conv maps stay conv maps, the input stays input).
_TRANSPARENT_KINDS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*d, InstanceNorm*d
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.PReLU,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


@dataclass
class Trace:
    """What one forward pass showed about a dropout module, at its first call."""

    input_rank: int
    after_params: bool  # some feature-mixing module with parameters ran before it
    conv_rank: int | None  # output rank of the last such module if it was a conv, else None


def structural_type(model: nn.Module, module_path: str, module: nn.Module, attr: str) -> str:
    """Infer the layer type of a site from the model's structure alone."""
    if attr == "drop_prob" or is_stochastic_depth(module):
        # timm's DropBlock2d also holds a float drop_prob, but drops blocks of feature maps.
        return "spatial" if "DropBlock" in type(module).__name__ else "residual"
    if isinstance(module, (nn.RNNBase, VariationalDropout)):
        return "recurrent"
    if _in_attention(model, module_path):
        return "attention"
    if isinstance(module, _SPATIAL_KINDS):
        return "spatial"
    return _position_type(model, module_path)


def traced_type(structural: str, module: nn.Module, trace: Trace | None) -> str:
    """Refine a structural guess with what a forward pass showed."""
    if trace is None or structural not in ("input", "dense", "spatial"):
        return structural
    if isinstance(module, _SPATIAL_KINDS):
        return "spatial"
    if not trace.after_params:
        return "input"
    # Conv feature maps: the output of a conv, still in its layout (not flattened to
    # (batch, features) or to (batch, tokens, features) as a ViT's patch embedding does).
    if (
        trace.conv_rank is not None
        and trace.input_rank >= 3
        and trace.input_rank == trace.conv_rank
    ):
        return "spatial"
    return "dense"


def is_stochastic_depth(module: nn.Module) -> bool:
    """torchvision's ``StochasticDepth`` (rate in ``p``), recognised by name: no import."""
    return type(module).__name__ == "StochasticDepth"


def trace_dropouts(
    model: nn.Module, dropouts: Mapping[str, nn.Module], example_input: Any
) -> dict[str, Trace]:
    """Run ``model`` once on ``example_input`` (eval mode, no grad) and trace its dropouts."""
    traces: dict[str, Trace] = {}
    state: dict[str, Any] = {"after_params": False, "conv_rank": None}
    dropout_ids = {id(m): path for path, m in dropouts.items()}

    def on_module(module: nn.Module, _inputs: Any, output: Any) -> None:
        if (
            isinstance(module, _TRANSPARENT_KINDS)
            or next(module.parameters(recurse=False), None) is None
        ):
            return
        state["after_params"] = True
        is_conv = isinstance(module, _CONV_KINDS) and isinstance(output, torch.Tensor)
        state["conv_rank"] = output.dim() if is_conv else None

    def on_dropout(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        path = dropout_ids[id(module)]
        if path in traces or not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        traces[path] = Trace(inputs[0].dim(), state["after_params"], state["conv_rank"])

    handles = [
        module.register_forward_pre_hook(on_dropout)
        if id(module) in dropout_ids
        else module.register_forward_hook(on_module)
        for module in model.modules()
    ]
    modes = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            _call(model, example_input)
    except Exception as err:
        raise ConfigError(
            f"discover: the forward pass on example_input failed ({type(err).__name__}: {err}). "
            "Pass one batch the model accepts (a tensor, a tuple of positional arguments or a "
            "dict of keyword arguments), or no example_input."
        ) from err
    finally:
        for module, training in modes.items():
            module.training = training
        for handle in handles:
            handle.remove()
    return traces


def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def _in_attention(model: nn.Module, module_path: str) -> bool:
    """Whether the module at ``module_path`` or one of its ancestors is an attention block."""
    parts = module_path.split(".") if module_path else []
    for depth in range(len(parts) + 1):
        holder = model.get_submodule(".".join(parts[:depth]))
        # A user's own attention block (CausalSelfAttention, timm's Attention, ...).
        if isinstance(holder, _ATTENTION_KINDS) or "Attention" in type(holder).__name__:
            return True
    return False


def _position_type(model: nn.Module, module_path: str) -> str:
    """input / spatial / dense from the leaf modules registered before ``module_path``.

    Registration order stands in for execution order: the last conv makes it spatial
    until a Flatten or a feature-mixing layer; no such layer at all makes it input.
    """
    seen: str | None = None
    for path, module in model.named_modules():
        if path == module_path:
            break
        if next(module.children(), None) is not None:
            continue  # containers: their own parameters say nothing about order
        if isinstance(module, _CONV_KINDS):
            seen = "spatial"
        elif isinstance(module, nn.Flatten):
            seen = "dense" if seen == "spatial" else seen
        elif (
            not isinstance(module, _TRANSPARENT_KINDS)
            and next(module.parameters(recurse=False), None) is not None
        ):
            seen = "dense"
    return seen or "input"
