"""Where a study's relative stores live: its project folder, found from the study file.

A relative SQLite or journal store in a study file (and the defaults ``sqlite:///studies/droptune.db``,
``sqlite:///mlruns/mlflow.db``) is resolved against :func:`project_root`, so the same study
file resumes the same study from any working directory; a relative store given as a flag is
resolved against the working directory, as a shell user expects.
"""

from __future__ import annotations

import os
from pathlib import Path

from droptune.exceptions import StudyError

__all__ = ["PROJECT_MARKERS", "absolute_sqlite_url", "project_root", "require_sqlite_store", "resolve_sqlite_url"]

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


# Stores kept in a local file: SQLite databases, and Optuna journal files (journal:///...).
_FILE_PREFIXES = ("sqlite:///", "journal:///")


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
    for prefix in _FILE_PREFIXES:
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
            return prefix + str(Path(base, url.removeprefix(prefix)).resolve())
    return url


def absolute_sqlite_url(url: str) -> str:
    """Make a relative SQLite (or journal) URL absolute against the current directory.

    Relative store paths are relative to where the command runs. Resolving them once, up
    front, matters because MLflow caches its stores by URI string: a relative URI reused
    after a change of directory would silently write to the first directory's database.
    """
    return resolve_sqlite_url(url, Path.cwd())


def require_sqlite_store(url: str, *, what: str, flag: str) -> None:
    """Refuse a file store (SQLite, journal) that does not exist yet: only ``droptune tune`` creates stores.

    Commands that read a study (recommend, export, ui, worker) would otherwise create an
    empty database where the user mistyped a path.

    Raises:
        StudyError: Naming the store, where it was looked for, and the fix.
    """
    prefix = next((p for p in _FILE_PREFIXES if url.startswith(p)), None)
    if prefix is not None:
        db = Path(url.removeprefix(prefix))
        if not db.is_file():
            raise StudyError(
                f"no {what} at {url} ({flag}): {db} does not exist (relative to {Path.cwd()}). "
                f"Run `droptune tune STUDY_FILE` here first, or point {flag} at the study's store."
            )
