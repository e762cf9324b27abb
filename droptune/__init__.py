"""droptune: tune the dropout rates of PyTorch Lightning models, layer by layer."""

from __future__ import annotations

from droptune.exceptions import ConfigError, DroptuneError, DroptuneWarning, SiteError, StudyError
from droptune.sites import LAYER_TYPES, DropoutSite, apply_rates, discover, get_rates

__version__ = "0.1.0"

__all__ = [
    "LAYER_TYPES",
    "ConfigError",
    "DropoutSite",
    "DroptuneError",
    "DroptuneWarning",
    "SiteError",
    "StudyError",
    "__version__",
    "apply_rates",
    "discover",
    "get_rates",
]
