"""Per-member rates for dropout that code calls functionally, inside a packed (vmapped) model.

Real attention code reads a rate as a Python float and hands it on: timm's fused attention
and HF BERT / GPT-2 pass ``self.attn_drop.p`` to ``scaled_dot_product_attention``, Llama
passes ``self.attention_dropout`` to it or to ``F.dropout``. A float cannot differ from one
member to the next. So in the packed copy each such rate is a *sentinel*: a distinct float
(``RateModule.p`` of a converted dropout, or the float attribute itself) that stands for
a rate buffer. While the packed model runs, a :class:`~torch.overrides.TorchFunctionMode`
sees each functional dropout call; a call whose rate is a sentinel is computed here with
the member's rate tensor (attention written out, since SDPA's ``dropout_p`` is a scalar).
Any other rate passes through unchanged (a literal rate is the same for every member).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from droptune.exceptions import PackingError
from droptune.sites._trace import ATTENTION_FUNCTIONS, RATE_FUNCTIONS, call_rate

SENTINEL_BASE = 0.3141592653
SENTINEL_STEP = 1.0e-9
_SENTINEL_BAND = (SENTINEL_BASE, SENTINEL_BASE + 1.0e-3)
SENTINELS_ATTR = "_droptune_sentinels"  # on the packed root: {sentinel: (module path, buffer)}
_MODES_ATTR = "_droptune_modes"
_ACTIVE = [0]  # packed forward passes running now: RateModule.p may be read only then

_ELEMENTWISE = {F.dropout, torch.dropout}
_CHANNEL = {F.dropout1d: 1, F.dropout2d: 2, F.dropout3d: 3}


def sentinel(index: int) -> float:
    """The ``index``-th sentinel rate: distinct, a valid probability, never a real choice."""
    return SENTINEL_BASE + index * SENTINEL_STEP


def active() -> bool:
    """Whether a packed forward pass (and so the interception) is running."""
    return _ACTIVE[0] > 0


class PackedDropoutMode(TorchFunctionMode):
    """Computes functional dropout whose rate is a sentinel with the member's rate tensor."""

    def __init__(self, root: nn.Module, sentinels: Mapping[float, tuple[str, str]]) -> None:
        super().__init__()
        self.root = root
        self.sentinels = sentinels

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in RATE_FUNCTIONS:
            return func(*args, **kwargs)
        rate, training = call_rate(func, args, kwargs)
        held = self.sentinels.get(rate)
        if held is None and _SENTINEL_BAND[0] <= rate < _SENTINEL_BAND[1]:
            raise PackingError(
                f"a dropout rate computed from a packed rate ({rate!r}) reached {func.__name__}: code that "
                "does arithmetic on a rate cannot be packed. Run this model unpacked (search.pack: 1)."
            )
        if func is F.scaled_dot_product_attention:
            # Written out for every call: the fused kernels take the rate as a float.
            return attention(*args, **{**kwargs, "dropout_p": self._rate(held) if held else rate})
        if held is None:
            return func(*args, **kwargs)
        if func in ATTENTION_FUNCTIONS or func not in _ELEMENTWISE | set(_CHANNEL):
            raise PackingError(
                f"{'.'.join(held)} feeds {func.__name__}, which has no per-member (packed) version; "
                "hold that rate in an nn.MultiheadAttention / nn.Dropout, or run unpacked (search.pack: 1)."
            )
        x = args[0] if args else kwargs["input"]
        if not training:
            return x
        return drop(x, self._rate(held), _channel_dims(func, x))

    def _rate(self, held: tuple[str, str]) -> torch.Tensor:
        path, buffer = held
        return getattr(self.root.get_submodule(path), buffer)


def drop(x: torch.Tensor, rate: torch.Tensor | float, spatial_dims: int = 0) -> torch.Tensor:
    """Inverted dropout of ``x`` at ``rate``; whole channels when ``spatial_dims`` > 0."""
    if spatial_dims:
        lead = max(x.dim() - spatial_dims, 1)
        shape = tuple(x.shape[:lead]) + (1,) * (x.dim() - lead)
    else:
        shape = tuple(x.shape)
    rate = torch.as_tensor(rate, device=x.device)
    keep = torch.rand(shape, device=x.device) >= rate
    return torch.where(keep, x * (1.0 / (1.0 - rate)).to(x.dtype), 0.0)


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: torch.Tensor | float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` in plain ops, with a tensor (per-member) dropout rate."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, -3), value.repeat_interleave(repeat, -3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query * scale) @ key.transpose(-2, -1)
    if is_causal:
        causal = torch.ones(query.shape[-2], key.shape[-2], dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    probs = torch.softmax(scores, dim=-1)
    if isinstance(dropout_p, torch.Tensor) or dropout_p > 0.0:
        probs = drop(probs, dropout_p)
    return probs @ value


def install(root: nn.Module, sentinels: Mapping[float, tuple[str, str]]) -> None:
    """Make every forward pass of ``root`` run under :class:`PackedDropoutMode`."""
    setattr(root, SENTINELS_ATTR, dict(sentinels))
    setattr(root, _MODES_ATTR, [])
    root.register_forward_pre_hook(_enter)
    root.register_forward_hook(_leave, always_call=True)


def _enter(module: nn.Module, _args: Any) -> None:
    mode = PackedDropoutMode(module, getattr(module, SENTINELS_ATTR))
    mode.__enter__()
    getattr(module, _MODES_ATTR).append(mode)
    _ACTIVE[0] += 1


def _leave(module: nn.Module, _args: Any, _output: Any) -> None:
    modes = getattr(module, _MODES_ATTR)
    if modes:
        _ACTIVE[0] -= 1
        modes.pop().__exit__(None, None, None)


def _channel_dims(func: Any, x: torch.Tensor) -> int:
    dims = _CHANNEL.get(func, 0)
    return 1 if dims == 2 and x.dim() == 3 else dims  # as F.dropout2d on (N, C, L)
