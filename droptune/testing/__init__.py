"""Helpers for droptune's tests and for users testing their own extensions."""

from __future__ import annotations

from droptune.testing._tiny import TinyDataModule, TinyModule

__all__ = ["TinyDataModule", "TinyModule"]
