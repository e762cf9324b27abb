"""Stochastic depth: drop a whole sample's residual branch."""

from __future__ import annotations

import torch
from torch import nn

from droptune.nn._validate import check_p


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016), in the style of timm's ``DropPath``.

    Wrap a residual branch: ``x + drop_path(branch(x))``. In training each sample's
    branch output is zeroed with probability ``drop_prob`` and otherwise scaled by
    ``1 / (1 - drop_prob)``; evaluation is the identity.

    Args:
        drop_prob: Probability in [0, 1) of dropping a sample's branch, default 0.1.
            The attribute keeps timm's name so droptune finds DropPath modules from
            either library.

    Raises:
        ValueError: If ``drop_prob`` is not in [0, 1), or (in ``forward``) the input
            has no batch dimension.

    Example:
        >>> drop = DropPath(0.5).train()
        >>> y = drop(torch.ones(8, 3))
        >>> sorted({float(v) for v in y.flatten()}) in ([0.0, 2.0], [0.0], [2.0])
        True
    """

    def __init__(self, drop_prob: float = 0.1) -> None:
        super().__init__()
        self.drop_prob = check_p(drop_prob, name="drop_prob")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0:
            raise ValueError(
                "DropPath expects a tensor with a leading batch dimension; got a scalar."
            )
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = x.new_empty(shape).bernoulli_(keep) / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
