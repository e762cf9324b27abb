"""Packed trials: many trials of a study trained at once as one vectorised population.

A packed worker (``search.pack: K`` or ``droptune tune --pack K``) asks the study for K
trials and trains their models together on one device: parameters stacked, the user's
module run through ``torch.func.functional_call`` under ``torch.vmap``, each member with
its own dropout rates held as tensors, and element-wise optimisers that keep each
member's state apart. The executor that trains them is
:class:`droptune.tuning.executors.PackedExecutor`.
"""

from __future__ import annotations

from droptune.packing._attention import RateMultiheadAttention
from droptune.packing._auto import resolve_pack
from droptune.packing._convert import check_packable, packable_copy
from droptune.packing._data import PackedData
from droptune.packing._dropout import (
    RateChannelDropout,
    RateDropout,
    RateDropPath,
    RateModule,
    RateVariationalDropout,
)
from droptune.packing._optim import PackedAdam, PackedOptimizer, PackedSGD, packed_optimizer
from droptune.packing._population import Population
from droptune.packing._setup import resolve_loss

__all__ = [
    "PackedAdam",
    "PackedData",
    "PackedOptimizer",
    "PackedSGD",
    "Population",
    "RateChannelDropout",
    "RateDropPath",
    "RateDropout",
    "RateModule",
    "RateMultiheadAttention",
    "RateVariationalDropout",
    "check_packable",
    "packable_copy",
    "packed_optimizer",
    "resolve_loss",
    "resolve_pack",
]
