"""A damaged SQLite store (truncated, garbage mid-file) named as one error with its repair.

SQLite reports damage as ``DatabaseError: database disk image is malformed`` (or ``file is
not a database``) from whatever query first reads a bad page, wrapped by SQLAlchemy, Optuna
or MLflow: a traceback that names no file. droptune notes every SQLite store file it opens
(:func:`note`); opening one checks its header and length (constant time), and an error whose
cause is SQLite's damage report is turned into a :class:`StoreDamagedError` naming the
damaged file (found with ``PRAGMA quick_check``) and how to repair it
(:func:`damaged_store_error`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from droptune.exceptions import StudyError

__all__ = ["StoreDamagedError", "StoreFullError", "check_header", "damage", "damaged_store_error", "forget", "note"]

_MAGIC = b"SQLite format 3\x00"
_OPENED: dict[Path, None] = {}  # SQLite store files this process opened, in order
_DESCRIPTORS: dict[Path, int] = {}  # see _descriptor: never closed


class StoreDamagedError(StudyError):
    """A SQLite store file is damaged: the message names it and the repair."""

    def __init__(self, path: Path, what: str) -> None:
        fixed = path.with_name(f"{path.stem}-fixed{path.suffix}")
        super().__init__(
            f"the SQLite database {path} is damaged ({what}); droptune cannot read it. Repair it with "
            f'`sqlite3 {path} ".recover" | sqlite3 {fixed}`, check the result, then put {fixed.name} in '
            f"its place (keep the damaged file until then), or restore {path.name} from a backup."
        )
        self.path = path


class StoreFullError(StudyError):
    """SQLite could not write a store: its disk is full."""

    #: What a trial cut short by it records as its reason.
    trial_reason = "a SQLite store could not be written (database or disk is full); redone on resume"


def note(path: Path | None) -> None:
    """Remember that this process opens SQLite store ``path``, and check its header and length.

    Raises:
        StoreDamagedError: The file is not a SQLite database or is shorter than its header says.
    """
    if path is None:
        return
    _OPENED[path] = None
    what = check_header(path)  # through a descriptor never closed: see _descriptor
    if what:
        raise StoreDamagedError(path, what)


def forget() -> None:
    """Forget the files noted so far (a new command starts; tests run several in one process)."""
    _OPENED.clear()


def check_header(path: Path) -> str | None:
    """What is wrong with ``path``'s SQLite header or length (constant time), or None."""
    try:
        fd = _descriptor(path)
        header = os.pread(fd, 100, 0)
        size = os.fstat(fd).st_size
    except OSError:
        return None  # missing (a new store) or unreadable: SQLite says which
    if size == 0:
        return None  # a store about to be created
    if len(header) < 100 or not header.startswith(_MAGIC):
        return "it does not start with a SQLite header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[92:96] == header[24:28]  # the page count is current (SQLite >= 3.7.0)
    if valid and pages and size < pages * page_size:
        return f"truncated: {size} bytes of the {pages * page_size} its header gives"
    return None


def _descriptor(path: Path) -> int:
    """A read-only descriptor of ``path``, opened once per file and never closed.

    Closing any descriptor of a file drops every POSIX lock this process holds on it, SQLite's
    included: a connection that lost its locks while other processes write corrupts the
    database ("How To Corrupt An SQLite Database File", section 2.2; seen here as MLflow stores
    "malformed" after workers were killed). So the header is read through a descriptor kept
    open for the life of the process (a new one if the file was replaced).
    """
    inode = os.stat(path).st_ino
    fd = _DESCRIPTORS.get(path)
    if fd is None or os.fstat(fd).st_ino != inode:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        _DESCRIPTORS[path] = fd
    return fd


def damage(path: Path) -> str | None:
    """What is wrong with SQLite file ``path`` (header, length, then ``PRAGMA quick_check``), or None."""
    what = check_header(path)
    if what or not path.exists():
        return what
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
            rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError:
        return None  # locked, unreadable: not damage
    except sqlite3.DatabaseError as error:
        return str(error)
    found = [str(r[0]) for r in rows]
    return None if found == ["ok"] else found[0]


def damaged_store_error(error: BaseException, paths: list[Path] | None = None) -> StudyError | None:
    """A :class:`StoreDamagedError` for ``error`` if SQLite's damage report caused it, a
    :class:`StoreFullError` if SQLite's "database or disk is full" did, else None.

    Args:
        error: Any exception; its causes and contexts are searched.
        paths: The SQLite files to examine (default: every one this process opened).
    """
    if _caused_by_full_disk(error):
        files = ", ".join(str(p) for p in (paths if paths is not None else reversed(_OPENED))) or "the store"
        return StoreFullError(
            f"SQLite could not write: the disk holding {files} is full (database or disk is full). What was "
            "written before is kept; free some space and run the same command to resume."
        )
    if not _caused_by_damage(error):
        return None
    for path in paths if paths is not None else list(reversed(_OPENED)):  # the latest opened first
        what = damage(path)
        if what:
            return StoreDamagedError(path, what)
    return None


def _caused_by_full_disk(error: BaseException | None) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for found in (error, getattr(error, "orig", None)):
            if isinstance(found, sqlite3.OperationalError) and "database or disk is full" in str(found):
                return True
        error = error.__cause__ or error.__context__
    return False


def _caused_by_damage(error: BaseException | None) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StoreDamagedError):
            return False  # already named
        for found in (error, getattr(error, "orig", None)):  # SQLAlchemy keeps the driver's error as .orig
            if isinstance(found, sqlite3.DatabaseError) and not isinstance(found, sqlite3.OperationalError):
                return True
        error = error.__cause__ or error.__context__
    return False
