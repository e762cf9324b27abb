"""Where a study's relative stores live: its project folder, found from the study file.

A relative SQLite or journal store in a study file (and the defaults ``sqlite:///studies/droptune.db``,
``sqlite:///mlruns/mlflow.db``) is resolved against :func:`project_root`, so the same study
file resumes the same study from any working directory; a relative store given as a flag is
resolved against the working directory, as a shell user expects. Resolving a URL against a
folder is here (reading a study file needs it); the rest of the URL handling lives in
:mod:`droptune.stores._urls`, which builds on it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FILE_STORE_PREFIXES", "JOURNAL_PREFIX", "PROJECT_MARKERS", "project_root", "resolve_sqlite_url"]

# What marks a study's project folder, where its relative stores live.
PROJECT_MARKERS = ("mlruns", "pyproject.toml", ".git")
JOURNAL_PREFIX = "journal:///"
# Stores kept in a local file: SQLite databases, and Optuna journal files (journal:///...).
FILE_STORE_PREFIXES = ("sqlite:///", JOURNAL_PREFIX)


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


def resolve_sqlite_url(url: str, base: str | os.PathLike[str]) -> str:
    """Make a relative SQLite (or journal) URL absolute against folder ``base``; other URLs are unchanged.

    Example:
        >>> resolve_sqlite_url("sqlite:///studies/droptune.db", "/srv/project")
        'sqlite:////srv/project/studies/droptune.db'
        >>> resolve_sqlite_url("journal:///studies/droptune.journal", "/srv/project")
        'journal:////srv/project/studies/droptune.journal'
        >>> resolve_sqlite_url("postgresql+psycopg://db/x", "/srv/project")
        'postgresql+psycopg://db/x'
    """
    for prefix in FILE_STORE_PREFIXES:
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str(Path(base, url.removeprefix(prefix)).resolve())
    return url
