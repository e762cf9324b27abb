"""The model state a traced pass changes and puts back: probe values, modes, buffers.

Every public float attribute in [0, 1) of every module, and every rate-named key of the
model's config objects, is a candidate rate. The probed pass gives each its own tiny
probe value (``PROBE_BASE + i * PROBE_STEP``); LayerDrop and PatchDropout rates are held
at exactly 0 instead; config keys and held rates are :class:`~droptune.sites._rates.Watched`,
so that reading them at forward time is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from droptune.sites._rates import Key, Watched, config_candidates, held_at_zero, is_config_attr, set_rate

PROBE_BASE = 1.0e-6
PROBE_STEP = 1.0e-12


def rate_candidates(model: nn.Module) -> dict[Key, float]:
    """Every public float attribute in [0, 1) of every module, and the rate-named config keys."""
    out: dict[Key, float] = {}
    for path, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr == "training" or type(value) is not float:
                continue
            if 0.0 <= value < 1.0:
                out[(path, attr)] = value
    return out | config_candidates(model)


def probe_values(model: nn.Module, candidates: Mapping[Key, float], *, probe: bool) -> dict[float, Key]:
    """``{value: candidate}``: its own probe value each, or (no probing) each unique nonzero value."""
    tunable = [key for key in candidates if not held_at_zero(model.get_submodule(key[0]), key[1])]
    if probe:
        return {PROBE_BASE + i * PROBE_STEP: key for i, key in enumerate(tunable)}
    values = [candidates[k] for k in tunable]
    return {candidates[k]: k for k in tunable if candidates[k] > 0.0 and values.count(candidates[k]) == 1}


def set_probes(
    model: nn.Module, candidates: Mapping[Key, float], probes: Mapping[float, Key], hook: Callable[[Key], None]
) -> None:
    """Probe values in place; LayerDrop and PatchDropout rates at 0; those and config keys watched."""
    values = {key: value for value, key in probes.items()}
    for key, original in candidates.items():
        module, attr = model.get_submodule(key[0]), key[1]
        still = held_at_zero(module, attr)
        value = 0.0 if still else values.get(key, original)
        if still or is_config_attr(attr):
            value = Watched(value, key, hook)
        if value is not original:
            set_rate(module, attr, value)


def restore(
    model: nn.Module, attributes: Mapping[Key, float], modes: Mapping[nn.Module, bool], buffers: Mapping[str, torch.Tensor]
) -> None:
    """Put back attributes, config keys, train/eval modes and buffers (BatchNorm statistics) as they were."""
    for (path, attr), value in attributes.items():
        set_rate(model.get_submodule(path), attr, value)
    for module, training in modes.items():
        module.training = training
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name in buffers and buffers[name].shape == buffer.shape:
                buffer.copy_(buffers[name])


def call_model(model: nn.Module, example_input: Any) -> Any:
    """``model(example_input)``: a mapping is keyword arguments, a tuple/list positional ones."""
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def fork_rng() -> Any:
    """The RNG states, put back when the block ends (CUDA's too, once initialised)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return torch.random.fork_rng(devices=devices)
