"""A small Vision-Transformer-style classifier over a sequence of patches."""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import override

from droptune.models._base import ClassifierModule
from droptune.nn import DropPath

POS_EMBED_STD = 0.5


class Block(nn.Module):
    """A pre-norm Transformer block with stochastic depth on both residual branches.

    ``x + drop_path(attn(norm1(x)))``, then ``x + drop_path(mlp(norm2(x)))``; one
    :class:`~droptune.nn.DropPath` (attribute ``drop_path``) serves both branches.

    Args:
        dim: Token width.
        heads: Attention heads (``dim`` must be divisible by it).
        mlp_ratio: Hidden width of the MLP, in multiples of ``dim``.
        attention_dropout: Drop probability of the attention weights, in [0, 1).
        dropout: Drop probability inside the MLP, in [0, 1).
        drop_path: Probability of skipping a residual branch, in [0, 1).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        mlp_ratio: int = 2,
        attention_dropout: float = 0.1,
        dropout: float = 0.1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * dim, dim),
            nn.Dropout(dropout),
        )

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchTransformer(ClassifierModule):
    """A Transformer over ``(B, num_patches, patch_dim)`` patches, mean-pooled into a head.

    Linear patch embedding plus a learned positional embedding, ``depth`` pre-norm
    :class:`Block` s, mean over patches, LayerNorm, linear head. Stochastic depth grows
    linearly over depth from 0 to ``drop_path`` (as in timm), so ``blocks.0`` starts at 0.
    Fits digits ``view="patches"`` ``(B, 16, 4)``.

    Args:
        patch_dim: Values per patch (default 4: a 2x2 patch).
        num_patches: Patches per input (default 16).
        dim: Token width (default 32).
        depth: Blocks (default 2).
        heads: Attention heads (default 4).
        num_classes: Output logits (default 10).
        attention_dropout: Drop probability of the attention weights, in [0, 1) (default 0.1).
        dropout: Drop probability in each block's MLP, in [0, 1) (default 0.1).
        drop_path: Stochastic-depth rate of the last block, in [0, 1) (default 0.1).
        lr: AdamW learning rate (default 3e-3).
        weight_decay: AdamW weight decay (default 0.01).
    """

    def __init__(
        self,
        *,
        patch_dim: int = 4,
        num_patches: int = 16,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        num_classes: int = 10,
        attention_dropout: float = 0.1,
        dropout: float = 0.1,
        drop_path: float = 0.1,
        lr: float = 3e-3,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Linear(patch_dim, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, dim))
        # ViT's std=0.02 suits wide, rich tokens; a 2x2 patch carries 4 pixels, and with
        # positions that faint mean-pooling sees a bag of patches and learning stalls.
        nn.init.trunc_normal_(self.pos_embed, std=POS_EMBED_STD, a=-1.0, b=1.0)
        # Python floats, not torch.linspace: rates stay exact (0.1, not 0.10000000149).
        rates = [drop_path * i / (depth - 1) if depth > 1 else drop_path for i in range(depth)]
        self.blocks = nn.Sequential(
            *(
                Block(
                    dim, heads, attention_dropout=attention_dropout, dropout=dropout, drop_path=rate
                )
                for rate in rates
            )
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.blocks(self.embed(x) + self.pos_embed)
        return self.head(self.norm(tokens.mean(dim=1)))
