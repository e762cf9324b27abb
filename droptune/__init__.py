"""droptune: tune the dropout rates of PyTorch Lightning models, layer by layer.

Every public name is loaded on first use. The site API (discover, get_rates, apply_rates)
imports only torch, so that training code which only applies an exported config does not
import Optuna, MLflow or matplotlib; and ``import droptune`` alone imports none of them,
nor torch, so that ``droptune --version`` and ``--help`` answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from droptune._layer_types import LAYER_TYPES
from droptune.exceptions import ConfigError, DroptuneError, DroptuneWarning, SiteError, StudyError

if TYPE_CHECKING:
    from droptune.config import load_config
    from droptune.export import export_best, write_export
    from droptune.notebook import tune
    from droptune.recommend import Recommendation, recommend
    from droptune.sites import DropoutSite, apply_rates, discover, get_rates

__version__ = "0.1.0"

_LAZY = {
    "DropoutSite": "droptune.sites",
    "apply_rates": "droptune.sites",
    "discover": "droptune.sites",
    "get_rates": "droptune.sites",
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
