"""The droptune error tree: one root, each subclass also a matching builtin."""

from __future__ import annotations

__all__ = [
    "DroptuneError",
    "ConfigError",
    "SiteError",
    "StudyError",
    "PackingError",
    "DroptuneWarning",
]


class DroptuneError(Exception):
    """Root of every error droptune raises on purpose."""


class ConfigError(DroptuneError, ValueError):
    """A study file, a rates file or an argument is invalid."""


class SiteError(DroptuneError, ValueError):
    """Rates that do not fit the model's dropout sites (unknown, missing or out of range)."""


class StudyError(DroptuneError, RuntimeError):
    """A study cannot do what was asked (no finished trial, too few trials, ...)."""


class PackingError(DroptuneError, ValueError):
    """A model cannot be trained as a packed population."""


class DroptuneWarning(UserWarning):
    """Something is probably not what the user meant, but work goes on."""
