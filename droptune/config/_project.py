"""Where a study's relative stores live: its project folder, found from the study file.

A relative SQLite or journal store in a study file (and the defaults ``sqlite:///studies/droptune.db``,
``sqlite:///mlruns/mlflow.db``) is resolved against :func:`project_root`, so the same study
file resumes the same study from any working directory; a relative store given as a flag is
resolved against the working directory, as a shell user expects. The URL handling itself
lives in :mod:`droptune.stores._urls`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PROJECT_MARKERS", "project_root"]

# What marks a study's project folder, where its relative stores live.
PROJECT_MARKERS = ("mlruns", "pyproject.toml", ".git")


def project_root(study_file: str | os.PathLike[str]) -> Path:
    """The folder a study file's relative stores live in.

    The nearest folder above the study file (its own included) holding ``mlruns/``,
    ``pyproject.toml`` or ``.git``; else the study file's folder.

    Example:
        >>> import pathlib, tempfile
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "mlruns").mkdir(); (root / "studies").mkdir()
        >>> project_root(root / "studies" / "s.yaml") == root
        True
    """
    folder = Path(study_file).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / "mlruns").is_dir() or any((candidate / m).exists() for m in PROJECT_MARKERS[1:]):
            return candidate
    return folder
