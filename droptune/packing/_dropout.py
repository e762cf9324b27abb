"""Dropout modules whose rate is a tensor buffer, so that a vmapped population varies it.

PyTorch's dropout modules read their rate from a Python float, which ``torch.vmap`` cannot
vary from one member to the next. Each module here keeps the semantics of the module it
replaces (which elements share a mask, inverted scaling by ``1 / (1 - rate)``, identity in
eval mode) but reads the rate from a 0-dim buffer named ``rate``. Stacked over a
population, that buffer holds one rate per member.
"""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import override

from droptune.exceptions import PackingError

RATE_BUFFER = "rate"


class RateModule(nn.Module):
    """Base of the rate-tensor dropouts: holds ``rate`` (drop probability in [0, 1))."""

    rate: torch.Tensor
    # Set by packable_copy: the float that stands for this module's rate in code reading ``.p``.
    sentinel: float | None = None

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.register_buffer(RATE_BUFFER, torch.tensor(float(rate)))

    @property
    def p(self) -> float:
        """The rate as code that reads ``dropout.p`` sees it, inside a packed forward pass.

        timm's fused attention and HF BERT / GPT-2 pass ``self.dropout.p`` to
        ``scaled_dot_product_attention`` or ``F.dropout``; the value returned stands for
        this module's per-member rate, which the packed forward pass substitutes.

        Raises:
            PackingError: Outside a packed forward pass, where no per-member rate exists.
        """
        from droptune.packing._functional import active

        if self.sentinel is None or not active():
            raise PackingError(
                f"{type(self).__name__}.p was read outside a packed forward pass: a packed dropout's rate "
                "is a tensor (one per member) in the buffer 'rate'. Code that reads .p and hands it to "
                "F.dropout or scaled_dot_product_attention is intercepted only when the sites were "
                "discovered with an example input (a tensor batch or example_input_array)."
            )
        return self.sentinel

    def _drop(self, x: torch.Tensor, mask_shape: tuple[int, ...]) -> torch.Tensor:
        """Zero ``x`` where a uniform draw of ``mask_shape`` (broadcast to ``x``) is < rate."""
        if not self.training:
            return x
        keep = torch.rand(mask_shape, device=x.device) >= self.rate
        return torch.where(keep, x * (1.0 / (1.0 - self.rate)).to(x.dtype), 0.0)

    @override
    def extra_repr(self) -> str:
        return f"rate={self.rate.tolist()}"


class RateDropout(RateModule):
    """``nn.Dropout`` with a tensor rate: every element has its own mask."""

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._drop(x, tuple(x.shape))


class RateChannelDropout(RateModule):
    """``nn.Dropout1d/2d/3d`` with a tensor rate: whole channels share a mask.

    Args:
        rate: Drop probability.
        spatial_dims: 1, 2 or 3: the spatial dimensions after the channel dimension of
            a batched input; an input with one dimension fewer is unbatched ``(C, ...)``.
    """

    def __init__(self, rate: float, *, spatial_dims: int) -> None:
        super().__init__(rate)
        self.spatial_dims = spatial_dims

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial_dims
        if spatial == 2 and x.dim() == 3:  # as F.dropout2d does: (N, C, L), channel-wise 1-D
            spatial = 1
        lead = max(x.dim() - spatial, 1)
        return self._drop(x, tuple(x.shape[:lead]) + (1,) * (x.dim() - lead))


class RateDropPath(RateModule):
    """Stochastic depth with a tensor rate: each sample's whole branch shares a mask.

    Covers droptune's :class:`~droptune.nn.DropPath`, timm's ``DropPath`` (with
    ``scale_by_keep``) and torchvision's ``StochasticDepth`` (``mode="row"`` per sample,
    ``mode="batch"`` one mask for the batch).
    """

    def __init__(self, rate: float, *, scale_by_keep: bool = True, per_batch: bool = False) -> None:
        super().__init__(rate)
        self.scale_by_keep = scale_by_keep
        self.per_batch = per_batch

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        shape = (1,) * x.dim() if self.per_batch else (x.shape[0],) + (1,) * (x.dim() - 1)
        draw = torch.rand(shape, device=x.device, dtype=torch.float32)
        keep = (draw >= self.rate).to(x.dtype)
        if self.scale_by_keep:
            keep = keep / (1.0 - self.rate).to(x.dtype)
        return x * keep


class RateVariationalDropout(RateModule):
    """:class:`~droptune.nn.VariationalDropout` with a tensor rate: one mask per sequence."""

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(
                f"VariationalDropout expects a (batch, time, features) tensor; got shape {tuple(x.shape)}."
            )
        return self._drop(x, (x.shape[0], 1, x.shape[2]))
