"""Dropout sites: find them (discover), read them (get_rates), set them (apply_rates)."""

from __future__ import annotations

from droptune.sites._apply import apply_rates, get_rates, load_rates
from droptune.sites._discover import Discovery, Unreachable, discover, find_sites
from droptune.sites._site import LAYER_TYPES, DropoutSite, LayerType

__all__ = [
    "LAYER_TYPES",
    "Discovery",
    "DropoutSite",
    "LayerType",
    "Unreachable",
    "apply_rates",
    "discover",
    "find_sites",
    "get_rates",
    "load_rates",
]
