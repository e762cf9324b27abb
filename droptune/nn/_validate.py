"""Validation shared by droptune's dropout modules."""

from __future__ import annotations

import math
import numbers


def check_p(p: float, *, name: str = "p") -> float:
    """Return ``p`` as a float if it is a drop probability in [0, 1), else raise ValueError.

    Example:
        >>> check_p(0.25)
        0.25
        >>> check_p(1.0)
        Traceback (most recent call last):
        ...
        ValueError: p must be a drop probability in [0, 1); got 1.0.
    """
    if (
        isinstance(p, bool)
        or not isinstance(p, numbers.Real)
        or math.isnan(p)
        or not 0.0 <= p < 1.0
    ):
        raise ValueError(f"{name} must be a drop probability in [0, 1); got {p!r}.")
    return float(p)
