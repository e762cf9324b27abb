"""Store URLs: which local file a SQLite or journal URL names, and making relative ones absolute.

SQLite (``sqlite:///path``) and Optuna journal files (``journal:///path``) are stores kept in a
local file; any other URL (PostgreSQL, a tracking server) names a server. Relative paths are
resolved once, up front: MLflow caches its stores by URI string, so a relative URI reused after
a change of directory would write to the first directory's database.
"""

from __future__ import annotations

from pathlib import Path

from droptune.config._project import FILE_STORE_PREFIXES, JOURNAL_PREFIX, resolve_sqlite_url
from droptune.exceptions import StudyError

__all__ = [
    "JOURNAL_PREFIX",
    "absolute_sqlite_url",
    "journal_file",
    "require_sqlite_store",
    "resolve_sqlite_url",
    "sqlite_file",
    "store_file",
]

# An Optuna journal file (one machine; the fastest bookkeeping): journal:///relative/path or
# journal:////absolute/path, as SQLAlchemy writes SQLite URLs.


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (absolute), or None for other URLs and in-memory ones.

    Example:
        >>> sqlite_file("sqlite:////srv/p/studies/droptune.db"), sqlite_file("postgresql://h/db")
        (PosixPath('/srv/p/studies/droptune.db'), None)
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url in (prefix, prefix + ":memory:"):
        return None
    return Path(url.removeprefix(prefix)).absolute()


def journal_file(url: str) -> Path | None:
    """The file of a journal URL (absolute), or None for other URLs.

    Example:
        >>> journal_file("journal:////srv/p/studies/droptune.journal"), journal_file("sqlite:///x.db")
        (PosixPath('/srv/p/studies/droptune.journal'), None)
    """
    if not url.startswith(JOURNAL_PREFIX) or url == JOURNAL_PREFIX:
        return None
    return Path(url.removeprefix(JOURNAL_PREFIX)).absolute()


def store_file(url: str) -> Path | None:
    """The local file that holds a store (SQLite database or journal), or None (a server)."""
    return sqlite_file(url) or journal_file(url)


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
    prefix = next((p for p in FILE_STORE_PREFIXES if url.startswith(p)), None)
    if prefix is not None:
        db = Path(url.removeprefix(prefix))
        if not db.is_file():
            raise StudyError(
                f"no {what} at {url} ({flag}): {db} does not exist (relative to {Path.cwd()}). "
                f"Run `droptune tune STUDY_FILE` here first, or point {flag} at the study's store."
            )
