"""droptune: tune the dropout rates of PyTorch Lightning models, layer by layer.

The site API (discover, get_rates, apply_rates) imports only torch; the study-level API
(tune, recommend, export_best, export_recommended) is loaded on first use, so that training code which only
applies an exported config does not import Optuna, MLflow or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from droptune.exceptions import ConfigError, DroptuneError, DroptuneWarning, SiteError, StudyError
from droptune.sites import LAYER_TYPES, DropoutSite, apply_rates, discover, get_rates

__version__ = "0.1.0"

_LAZY = {
    "load_config": "droptune.config",
    "tune": "droptune.notebook",
    "recommend": "droptune.recommend",
    "Recommendation": "droptune.recommend",
    "export_best": "droptune.export",
    "export_recommended": "droptune.export",
    "write_export": "droptune.export",
}

__all__ = [
    "LAYER_TYPES",
    "ConfigError",
    "DropoutSite",
    "DroptuneError",
    "DroptuneWarning",
    "Recommendation",
    "SiteError",
    "StudyError",
    "__version__",
    "apply_rates",
    "discover",
    "export_best",
    "export_recommended",
    "get_rates",
    "load_config",
    "recommend",
    "tune",
    "write_export",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'droptune' has no attribute {name!r}")
