"""Small re-implementations of timm's MLP-Mixer, CoAtNet and MaxViT dropout patterns (timm 1.0).

timm cannot be installed here (see :mod:`._timm_like`). These copy what decides a
dropout's role, not the full architectures:

- MLP-Mixer (``mlp_mixer.py``): ``MixerBlock`` adds
  ``drop_path(mlp_tokens(norm1(x).transpose(1, 2)).transpose(1, 2))`` then
  ``drop_path(mlp_channels(norm2(x)))`` to ``x``; both ``Mlp`` at ``proj_drop_rate``; the
  head drops the mean token (``head_drop``). No attention anywhere.
- CoAtNet's transformer stages (``maxxvit.py`` ``TransformerBlock2d``): channels first
  throughout: ``Attention2d`` with 1x1-conv ``qkv``/``proj`` and ``proj_drop`` after the
  proj conv, ``ConvMlp`` (1x1 convs, ``drop`` after the activation), ``LayerNorm2d``; after
  a conv stem and an ``MbConvBlock``.
- MaxViT (``maxxvit.py`` ``MaxxVitBlock``): an ``MbConvBlock`` whose pre-norm is a
  ``BatchNormAct2d``, then two channels-last transformer blocks (block and grid attention;
  the window/grid partitioning, a reshape, is left out: one window covers the map). The
  next block's ``BatchNormAct2d`` runs after the last ``Mlp.drop2`` and the residual add.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._timm_like import Block, DropPath, Mlp


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0.0 else nn.Identity()


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class BatchNormAct2d(nn.BatchNorm2d):
    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class MixerBlock(nn.Module):
    def __init__(self, dim: int, seq_len: int, drop: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(seq_len, int(0.5 * dim), drop=drop)
        self.drop_path = _drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, int(4.0 * dim), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class MlpMixer(nn.Module):
    def __init__(self, *, dim: int = 16, depth: int = 2, proj_drop_rate: float = 0.1, drop_rate: float = 0.1,
                 drop_path_rate: float = 0.1, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 4, stride=4)  # PatchEmbed: 8x8 images, 4 patches
        self.blocks = nn.Sequential(*[MixerBlock(dim, 4, proj_drop_rate, drop_path_rate) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.stem(x).flatten(2).transpose(1, 2)))
        return self.head(self.head_drop(x.mean(dim=1)))


class Attention2d(nn.Module):
    fused_attn = True

    def __init__(self, dim: int, dim_head: int = 8, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = dim // dim_head
        self.dim_head = dim_head
        self.scale = dim_head**-0.5
        self.qkv = nn.Conv2d(dim, dim * 3, 1)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(x).view(B, self.num_heads, self.dim_head * 3, -1).chunk(3, dim=2)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q.transpose(-1, -2).contiguous(),
                k.transpose(-1, -2).contiguous(),
                v.transpose(-1, -2).contiguous(),
                dropout_p=self.attn_drop.p if self.training else 0.0,
            ).transpose(-1, -2).reshape(B, -1, H, W)
        else:
            attn = ((q * self.scale).transpose(-2, -1) @ k).softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = (v @ attn.transpose(-2, -1)).view(B, -1, H, W)
        return self.proj_drop(self.proj(x))


class ConvMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.norm = nn.Identity()
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.norm(self.fc1(x)))))


class TransformerBlock2d(nn.Module):
    def __init__(self, dim: int, proj_drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        self.shortcut = nn.Identity()
        self.norm1 = LayerNorm2d(dim)
        self.attn = Attention2d(dim, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = _drop_path(drop_path)
        self.norm2 = LayerNorm2d(dim)
        self.mlp = ConvMlp(dim, dim * 4, drop=proj_drop)
        self.drop_path2 = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shortcut(x) + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class MbConvBlock(nn.Module):
    """timm's MbConvBlock (pre-activation, stride 1, no squeeze-excitation)."""

    def __init__(self, dim: int, drop_path: float) -> None:
        super().__init__()
        self.shortcut = nn.Identity()
        self.pre_norm = BatchNormAct2d(dim)
        self.conv1_1x1 = nn.Conv2d(dim, dim * 4, 1)
        self.norm1 = BatchNormAct2d(dim * 4)
        self.conv2_kxk = nn.Conv2d(dim * 4, dim * 4, 3, padding=1, groups=dim * 4)
        self.norm2 = BatchNormAct2d(dim * 4)
        self.conv3_1x1 = nn.Conv2d(dim * 4, dim, 1)
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.norm2(self.conv2_kxk(self.norm1(self.conv1_1x1(self.pre_norm(x)))))
        return self.drop_path(self.conv3_1x1(x)) + shortcut


class CoAtNet(nn.Module):
    def __init__(self, *, dim: int = 16, proj_drop_rate: float = 0.1, attn_drop_rate: float = 0.1,
                 drop_rate: float = 0.1, drop_path_rate: float = 0.1, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, stride=2, padding=1)
        self.stages = nn.Sequential(
            MbConvBlock(dim, drop_path_rate),
            TransformerBlock2d(dim, proj_drop_rate, attn_drop_rate, drop_path_rate),
            TransformerBlock2d(dim, proj_drop_rate, attn_drop_rate, drop_path_rate),
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.stages(self.stem(x)).mean(dim=(2, 3))))


class MaxxVitBlock(nn.Module):
    def __init__(self, dim: int, proj_drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        self.conv = MbConvBlock(dim, drop_path)
        self.attn_block = Block(dim, proj_drop, attn_drop, drop_path)
        self.attn_grid = Block(dim, proj_drop, attn_drop, drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).permute(0, 2, 3, 1)  # channels last
        B, H, W, C = x.shape
        x = self.attn_grid(self.attn_block(x.reshape(B, H * W, C))).reshape(B, H, W, C)
        return x.permute(0, 3, 1, 2)


class MaxVit(nn.Module):
    def __init__(self, *, dim: int = 16, proj_drop_rate: float = 0.1, attn_drop_rate: float = 0.1,
                 drop_rate: float = 0.1, drop_path_rate: float = 0.1, num_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, stride=2, padding=1)
        self.stages = nn.Sequential(
            *[MaxxVitBlock(dim, proj_drop_rate, attn_drop_rate, drop_path_rate) for _ in range(2)]
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.stages(self.stem(x)).mean(dim=(2, 3))))
