"""Layer-type inference for dropout sites: structure first, a traced forward pass when given.

Structure alone settles most types (Dropout2d is spatial, an LSTM's dropout recurrent, a
DropPath residual, anything inside attention or a Transformer layer attention). What it
cannot settle is whether a plain ``nn.Dropout`` sees the raw input, conv feature maps or
dense features; a forward pass on one example, with hooks recording the order in which
modules run and the rank of each dropout's input, settles that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from droptune.nn import VariationalDropout

_SPATIAL_KINDS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_ATTENTION_KINDS = (nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
_CONV_KINDS = (nn.modules.conv._ConvNd,)


@dataclass
class Trace:
    """What one forward pass showed about a dropout module."""

    input_rank: int
    after_conv: bool  # the last module with parameters that ran before it was a conv
    after_params: bool  # some module with parameters ran before it


def structural_type(model: nn.Module, module_path: str, module: nn.Module, attr: str) -> str:
    """Infer the layer type of a site from the model's structure alone."""
    if attr == "drop_prob":
        return "residual"
    if isinstance(module, (nn.RNNBase, VariationalDropout)):
        return "recurrent"
    if _inside(model, module_path, _ATTENTION_KINDS):
        return "attention"
    if isinstance(module, _SPATIAL_KINDS):
        return "spatial"
    previous = _previous_parametrized(model, module_path)
    if previous is None:
        return "input"
    if isinstance(previous, _CONV_KINDS):
        return "spatial"
    return "dense"


def traced_type(structural: str, module: nn.Module, trace: Trace | None) -> str:
    """Refine a structural guess with what a forward pass showed."""
    if trace is None or structural in ("residual", "recurrent", "attention"):
        return structural
    if isinstance(module, _SPATIAL_KINDS):
        return "spatial"
    if not trace.after_params:
        return "input"
    if trace.after_conv and trace.input_rank >= 3:
        return "spatial"
    return "dense"


def trace_dropouts(
    model: nn.Module, dropouts: Mapping[str, nn.Module], example_input: Any
) -> dict[str, Trace]:
    """Run ``model`` once on ``example_input`` (eval mode, no grad) and trace its dropouts."""
    traces: dict[str, Trace] = {}
    state = {"last": None, "any": False}
    dropout_ids = {id(m): path for path, m in dropouts.items()}
    handles = []

    def on_leaf(module: nn.Module, _inputs: Any, _output: Any) -> None:
        if any(True for _ in module.parameters(recurse=False)):
            state["last"] = module
            state["any"] = True

    def on_dropout(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        path = dropout_ids[id(module)]
        if path in traces or not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        traces[path] = Trace(
            input_rank=inputs[0].dim(),
            after_conv=isinstance(state["last"], _CONV_KINDS),
            after_params=bool(state["any"]),
        )

    for module in model.modules():
        if id(module) in dropout_ids:
            handles.append(module.register_forward_pre_hook(on_dropout))
        else:
            handles.append(module.register_forward_hook(on_leaf))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            _call(model, example_input)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return traces


def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def _inside(model: nn.Module, module_path: str, kinds: tuple[type, ...]) -> bool:
    parts = module_path.split(".") if module_path else []
    for depth in range(len(parts)):
        ancestor = model.get_submodule(".".join(parts[:depth]))
        if isinstance(ancestor, kinds):
            return True
    return False


def _previous_parametrized(model: nn.Module, module_path: str) -> nn.Module | None:
    """The last module with its own parameters registered before ``module_path``."""
    previous = None
    for path, module in model.named_modules():
        if path == module_path:
            return previous
        if any(True for _ in module.parameters(recurse=False)):
            previous = module
    return previous
