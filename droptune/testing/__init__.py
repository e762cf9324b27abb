"""Helpers for droptune's tests and for users testing their own extensions."""

from __future__ import annotations

from droptune.testing._gated import GatedTinyModule
from droptune.testing._tiny import TinyDataModule, TinyModule
from droptune.testing._trials import add_trial

__all__ = ["GatedTinyModule", "TinyDataModule", "TinyModule", "add_trial"]
