"""droptune's own dropout modules, found by :func:`droptune.discover` like PyTorch's."""

from __future__ import annotations

from droptune.nn._drop_path import DropPath
from droptune.nn._variational import VariationalDropout

__all__ = ["DropPath", "VariationalDropout"]
