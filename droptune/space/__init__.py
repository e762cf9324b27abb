"""Search spaces over dropout sites, with the textbook priors and ranges per layer type."""

from __future__ import annotations

from droptune.space._priors import PRIORS, RANGES
from droptune.space._space import GLOBAL_PARAM, SCALE_PREFIX, UNTIED_SUFFIX, SearchSpace

__all__ = ["GLOBAL_PARAM", "PRIORS", "RANGES", "SCALE_PREFIX", "UNTIED_SUFFIX", "SearchSpace"]
