"""Study files: YAML parsed into frozen dataclasses, validated once at load.

Every key is optional except ``name``, ``model`` and ``data``. Unknown keys, repeated keys,
wrong types, bad ranges and unknown names raise one :class:`~droptune.exceptions.ConfigError`
naming the file (or the command-line flag) and the key path; nothing is created on disk
before a study file has passed. Every value check is declared in one table,
:data:`PARAMETER_CONSTRAINTS`, and worded by one template.

Relative SQLite stores in a study file (and the defaults) live in the study's *project
folder*: the nearest folder above the study file holding ``mlruns/``, ``pyproject.toml`` or
``.git``, else the study file's own folder. So the same study file resumes the same study
from any working directory. Stores given as flags are relative to the working directory.
"""

from __future__ import annotations

from droptune.config._build import build, build_model
from droptune.config._project import project_root
from droptune.config._spec import (
    DEFAULT_STORAGE,
    DEFAULT_TRACKING_URI,
    DIRECTIONS,
    GRANULARITIES,
    NO_TRACKING,
    OVERRIDES,
    PARAMETER_CONSTRAINTS,
    PRUNERS,
    SAMPLERS,
    SEED_MAX,
    TRACKING_FAILURES,
    ClassSpec,
    ObjectiveSpec,
    PackMode,
    SearchSpec,
    StudySpec,
    TrainerSpec,
    load_config,
    pack_mode,
    spec_from_dict,
)

__all__ = [
    "build",
    "build_model",
    "ClassSpec",
    "DEFAULT_STORAGE",
    "DEFAULT_TRACKING_URI",
    "DIRECTIONS",
    "GRANULARITIES",
    "NO_TRACKING",
    "OVERRIDES",
    "PackMode",
    "ObjectiveSpec",
    "PARAMETER_CONSTRAINTS",
    "PRUNERS",
    "SAMPLERS",
    "SEED_MAX",
    "TRACKING_FAILURES",
    "SearchSpec",
    "StudySpec",
    "TrainerSpec",
    "load_config",
    "pack_mode",
    "project_root",
    "spec_from_dict",
]
