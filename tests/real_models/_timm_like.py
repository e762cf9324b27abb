"""Small, faithful re-implementations of timm's dropout patterns (timm 1.0).

timm cannot be installed on the CPU test machine: it imports torchvision, whose registry
wheels are CUDA builds that fail to load with the CPU torch. These copy the lines of timm
that decide where dropout lives and how its rate reaches the kernels:

- ``Attention`` (fused): ``F.scaled_dot_product_attention(..., dropout_p=self.attn_drop.p if
  self.training else 0.)``: the ``nn.Dropout`` never runs, its ``.p`` is read.
- ``Mlp``: ``fc1 -> act -> drop1 -> fc2 -> drop2``, both drops at ``proj_drop_rate``.
- ``Block``: ``x + drop_path1(ls1(attn(norm1(x))))``; ``nn.Identity`` where the rate is 0.
- ``VisionTransformer``: ``pos_drop`` after the position embedding, stochastic depth rising
  linearly with depth (``torch.linspace(0, drop_path_rate, depth)``), ``head_drop``.
- ResNet's head: ``if self.drop_rate: x = F.dropout(x, p=float(self.drop_rate), ...)``, and
  ``DropBlock2d`` (a float ``drop_prob``) in the blocks.
- EfficientNet: the first block of a stage has no skip connection, so its DropPath never runs.
- ``PatchDropout`` (DeiT/ViT ``patch_drop_rate``): keeps ``max(1, int(L * (1 - prob)))`` of
  the ``L`` patch tokens, chosen by ``argsort(randn(B, L))``, prefix (class) tokens always
  kept; held as ``self.patch_drop`` after the position embedding, ``nn.Identity`` at rate 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def drop_path(
    x: torch.Tensor, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True
) -> torch.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)


class DropBlock2d(nn.Module):
    """timm's DropBlock2d, the fast (non-batchwise) path, without the noise option."""

    def __init__(self, drop_prob: float = 0.1, block_size: int = 3) -> None:
        super().__init__()
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.drop_prob:
            return x
        _, _, h, w = x.shape
        size = min(self.block_size, h, w)
        gamma = self.drop_prob * h * w / size**2 / ((w - size + 1) * (h - size + 1))
        block_mask = torch.empty_like(x).bernoulli_(gamma)
        block_mask = F.max_pool2d(block_mask, kernel_size=size, stride=1, padding=size // 2)
        block_mask = 1 - block_mask[..., :h, :w]
        normalize = block_mask.numel() / (1e-7 + block_mask.sum())
        return x * block_mask * normalize


class Attention(nn.Module):
    fused_attn = True

    def __init__(self, dim: int, num_heads: int = 2, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = self.attn_drop(attn.softmax(dim=-1))
            x = attn @ v
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.norm = nn.Identity()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class Block(nn.Module):
    def __init__(self, dim: int, proj_drop: float, attn_drop: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, attn_drop=attn_drop, proj_drop=proj_drop)
        self.ls1 = nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * 2, drop=proj_drop)
        self.ls2 = nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class PatchDropout(nn.Module):
    """timm's PatchDropout (timm/layers/patch_dropout.py), without ``return_indices``."""

    def __init__(self, prob: float = 0.5, num_prefix_tokens: int = 1, ordered: bool = False) -> None:
        super().__init__()
        assert 0 <= prob < 1.0
        self.prob = prob
        self.num_prefix_tokens = num_prefix_tokens
        self.ordered = ordered

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.prob == 0.0:
            return x
        if self.num_prefix_tokens:
            prefix_tokens, x = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens :]
        else:
            prefix_tokens = None
        B, L = x.shape[0], x.shape[1]
        num_keep = max(1, int(L * (1.0 - self.prob)))
        keep_indices = torch.argsort(torch.randn(B, L, device=x.device), dim=-1)[:, :num_keep]
        if self.ordered:
            keep_indices = keep_indices.sort(dim=-1)[0]
        x = x.gather(1, keep_indices.unsqueeze(-1).expand((-1, -1) + x.shape[2:]))
        if prefix_tokens is not None:
            x = torch.cat((prefix_tokens, x), dim=1)
        return x


class VisionTransformer(nn.Module):
    def __init__(
        self,
        *,
        depth: int = 4,
        dim: int = 16,
        drop_rate: float = 0.1,
        pos_drop_rate: float = 0.1,
        proj_drop_rate: float = 0.1,
        attn_drop_rate: float = 0.1,
        drop_path_rate: float = 0.2,
        patch_drop_rate: float = 0.0,
        num_classes: int = 3,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 5, dim) * 0.02)
        self.pos_drop = nn.Dropout(pos_drop_rate)
        self.patch_drop = PatchDropout(patch_drop_rate, num_prefix_tokens=1) if patch_drop_rate > 0 else nn.Identity()
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.Sequential(
            *[Block(dim, proj_drop_rate, attn_drop_rate, dpr[i]) for i in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.patch_drop(self.pos_drop(x + self.pos_embed))
        x = self.norm(self.blocks(x))
        return self.head(self.head_drop(x[:, 0]))


class BasicBlock(nn.Module):
    def __init__(self, ch: int, drop_block: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.drop_block = DropBlock2d(drop_block) if drop_block else nn.Identity()
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)  # zero_init_last off: a zeroed bn2 would hide the branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.drop_block(self.bn1(self.conv1(x))))
        return torch.relu(x + self.bn2(self.conv2(out)))


class ResNet(nn.Module):
    def __init__(self, *, drop_rate: float = 0.2, drop_block_rate: float = 0.1, num_classes: int = 3) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(8, drop_block_rate), BasicBlock(8, drop_block_rate))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x)).mean((2, 3))
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return self.fc(x)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop_path_rate: float) -> None:
        super().__init__()
        self.has_skip = stride == 1 and cin == cout
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU())
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return self.drop_path(out) + x if self.has_skip else out


class EfficientNet(nn.Module):
    """Two stages of two blocks; each stage's first block changes shape: no skip, dead DropPath."""

    def __init__(self, *, drop_path_rate: float = 0.2, drop_rate: float = 0.2) -> None:
        super().__init__()
        self.drop_rate = drop_rate
        chans = [(3, 8, 2), (8, 8, 1), (8, 16, 2), (16, 16, 1)]
        self.blocks = nn.Sequential(
            *[
                InvertedResidual(a, b, s, drop_path_rate * i / len(chans))
                for i, (a, b, s) in enumerate(chans, 1)
            ]
        )
        self.classifier = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x).mean((2, 3))
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)
