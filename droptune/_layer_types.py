"""The layer types a dropout site can have, in a module that imports nothing heavy.

The study-file schema (:mod:`droptune.config`) checks layer-type names, and it must do so
without importing torch: ``droptune --help`` and the refusal of a mistaken study file stay
fast. :mod:`droptune.sites` re-exports both names.
"""

from __future__ import annotations

from typing import Literal, get_args

LayerType = Literal[
    "input", "dense", "spatial", "recurrent", "attention", "hidden", "residual", "layerdrop", "patch"
]
LAYER_TYPES: tuple[str, ...] = get_args(LayerType)
