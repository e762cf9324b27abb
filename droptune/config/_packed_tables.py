"""The losses and precisions packed training supports, named as a study file names them.

A module below both :mod:`droptune.config` (which validates ``loss:`` and
``trainer.precision`` against these names when ``search.pack`` packs) and
:mod:`droptune.packing` (which trains with them), so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

# `loss:` names of a study file -> functions (outputs, targets) -> scalar.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
}

# Lightning precision -> autocast dtype (None: plain float32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "32-true": None,
    "32": None,
    "bf16-mixed": torch.bfloat16,
}
