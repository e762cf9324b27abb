"""Variational (locked) dropout: one mask per sequence, shared by all its time steps."""

from __future__ import annotations

import torch
from torch import nn

from droptune.nn._validate import check_p


class VariationalDropout(nn.Module):
    """Dropout with one mask per sequence, shared across time (Gal & Ghahramani, 2016).

    Input is ``(batch, time, features)`` (``batch_first=True``), the layout of
    ``nn.LSTM(batch_first=True)``. Each sequence draws one Bernoulli mask over its
    features and applies it at every time step, so a recurrent layer sees the same
    units dropped throughout, which is what makes dropout work between recurrent layers.

    Args:
        p: Drop probability in [0, 1), default 0.25. Kept units are scaled by
            ``1 / (1 - p)`` in training; evaluation is the identity (PyTorch's
            inverted-dropout convention: nothing is rescaled at test time).

    Raises:
        ValueError: If ``p`` is not in [0, 1), or (in ``forward``) the input is not 3-D.

    Example:
        >>> drop = VariationalDropout(0.5)
        >>> x = torch.ones(2, 4, 3)
        >>> y = drop(x)
        >>> bool((y[:, 0] == y[:, 1]).all())
        True
    """

    def __init__(self, p: float = 0.25) -> None:
        super().__init__()
        self.p = check_p(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Checked in eval too, so a wrong layout fails at once, not at the first training step.
        if x.dim() != 3:
            raise ValueError(
                "VariationalDropout expects a (batch, time, features) tensor; "
                f"got shape {tuple(x.shape)}."
            )
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(keep) / keep
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
