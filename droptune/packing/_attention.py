"""``nn.MultiheadAttention`` whose attention-weight dropout reads a tensor rate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from droptune.exceptions import PackingError
from droptune.packing._dropout import RATE_BUFFER


class RateMultiheadAttention(nn.MultiheadAttention):
    """Multi-head attention written out in plain tensor ops, dropout rate in buffer ``rate``.

    Same parameters and names as the module it replaces (``in_proj_weight``,
    ``in_proj_bias``, ``out_proj``), same outputs; the attention weights are dropped with
    the per-member rate. Written out because PyTorch's fused attention kernels take the
    rate as a Python float and have no batching rule for ``torch.vmap``.
    """

    rate: torch.Tensor

    @classmethod
    def from_module(cls, mha: nn.MultiheadAttention) -> RateMultiheadAttention:
        """A copy of ``mha`` (same weights) with its rate held as a buffer.

        Raises:
            PackingError: For key/value dimensions unlike the query's, ``add_bias_kv`` or
                ``add_zero_attn``, which this module does not implement.
        """
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise PackingError(
                "nn.MultiheadAttention with kdim/vdim different from embed_dim, add_bias_kv or "
                "add_zero_attn cannot be packed; run unpacked (search.pack: 1) or with "
                "--workers-per-gpu."
            )
        new = cls(
            mha.embed_dim,
            mha.num_heads,
            dropout=mha.dropout,
            bias=mha.in_proj_bias is not None,
            batch_first=mha.batch_first,
            device=mha.in_proj_weight.device,
            dtype=mha.in_proj_weight.dtype,
        )
        new.load_state_dict(mha.state_dict())
        new.train(mha.training)
        new.register_buffer(RATE_BUFFER, torch.tensor(float(mha.dropout), device=mha.in_proj_weight.device))
        return new

    @override
    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            key_padding_mask = key_padding_mask.unsqueeze(0) if key_padding_mask is not None else None
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        n, tgt_len, src_len, heads = query.shape[0], query.shape[1], key.shape[1], self.num_heads
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q = F.linear(query, w_q, b_q).view(n, tgt_len, heads, -1).transpose(1, 2)
        k = F.linear(key, w_k, b_k).view(n, src_len, heads, -1).transpose(1, 2)
        v = F.linear(value, w_v, b_v).view(n, src_len, heads, -1).transpose(1, 2)
        scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # (n, heads, L, S)
        scores = scores + _additive_mask(
            attn_mask, key_padding_mask, is_causal, n, heads, tgt_len, src_len, q
        )
        weights = torch.softmax(scores, dim=-1)
        if self.training:
            keep = (torch.rand(weights.shape, device=weights.device) >= self.rate).to(weights.dtype)
            weights = weights * (keep / (1.0 - self.rate).to(weights.dtype))
        out = (weights @ v).transpose(1, 2).reshape(n, tgt_len, self.embed_dim)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        weights = weights.mean(dim=1) if average_attn_weights else weights
        return out, weights if batched else weights.squeeze(0)


def _additive_mask(
    attn_mask: torch.Tensor | None,
    key_padding_mask: torch.Tensor | None,
    is_causal: bool,
    n: int,
    heads: int,
    tgt_len: int,
    src_len: int,
    like: torch.Tensor,
) -> torch.Tensor | float:
    """Masks as one additive term of shape broadcastable to ``(n, heads, L, S)``."""
    total: torch.Tensor | float = 0.0
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(tgt_len, src_len, dtype=torch.bool, device=like.device).triu(1)
    if attn_mask is not None:
        mask = _as_float(attn_mask, like)
        total = mask.view(n, heads, tgt_len, src_len) if mask.dim() == 3 and mask.shape[0] != 1 else mask
    if key_padding_mask is not None:
        total = total + _as_float(key_padding_mask, like).view(n, 1, 1, src_len)
    return total


def _as_float(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(mask, float("-inf"))
    return mask.to(like.dtype)
