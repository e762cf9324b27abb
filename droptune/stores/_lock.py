"""droptune's locks: exclusive file locks that say who holds them, and PostgreSQL's advisory lock.

Every lock droptune takes is one of two, both defined here: an ``fcntl`` lock on a small file
(:func:`hold`; store creation, the study lock of a journal or SQLite store), or a PostgreSQL
session advisory lock (:func:`advisory_lock`; the same across machines). The operating system
or the server releases either when its holder dies. :func:`private_lock_folder` is the per-user folder of those that live in
the system's temporary folder: ``droptune-locks-<uid>``, mode 0700, refused (with the fix) when
another user owns it, so that no other user can block a lock or make ``tune`` fail.
:func:`hold` takes a lock, writes the holder's pid into the file, and while it waits longer
than :data:`REPORT_AFTER_S` reports once who holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from droptune.exceptions import StudyError
from droptune.stores._urls import store_file

__all__ = [
    "CREATE_LOCK_KEY",
    "REPORT_AFTER_S",
    "advisory_lock",
    "file_lock",
    "hold",
    "private_lock_folder",
    "store_lock",
]

log = logging.getLogger(__name__)

REPORT_AFTER_S = 10.0  # a lock waited on this long is reported (once), with its holder
# The PostgreSQL advisory lock (a signed 64-bit key) held while a study's stores are created.
CREATE_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"droptune:create-stores", digest_size=8).digest(), "big", signed=True)


def private_lock_folder(base: Path | None = None) -> Path:
    """``<base>/droptune-locks-<uid>`` (``base``: the system's temporary folder), made 0700.

    Raises:
        StudyError: The folder exists but is not a folder owned by this user (another user
            made it, or it is a symbolic link): droptune will not put its locks there.
    """
    uid = os.getuid()
    folder = Path(base or tempfile.gettempdir()) / f"droptune-locks-{uid}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a folder"
        raise StudyError(
            f"droptune's lock folder {folder} is {what} owned by uid {info.st_uid}, not by you (uid {uid}): "
            "another user can block or break your locks there, so droptune will not use it. "
            f"Remove it (it holds only lock files), or point TMPDIR at a folder of your own."
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)  # ours, but opened up (an old droptune made it 0755): close it
    return folder


@contextlib.contextmanager
def hold(path: Path, mode: int = 0o600) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on file ``path`` (created with ``mode``), reporting a long wait.

    Released by the operating system if this process dies.
    """
    import fcntl  # POSIX only, as is every store file shared by several processes

    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        _acquire(fd, path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for a waiter's report; never trusted
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    # Held: wait in the kernel (woken the moment it is released); a timer reports a long wait.
    start = time.monotonic()
    timer = threading.Timer(REPORT_AFTER_S, _report_wait, (path, start))
    timer.daemon = True
    timer.start()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        timer.cancel()


def _report_wait(path: Path, start: float) -> None:
    log.warning(
        "waiting for the lock %s, held by %s for more than %.0f s; still waiting "
        "(if that process hangs, stop it and run the command again)",
        path, _holder(path), time.monotonic() - start,
    )


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process (pid unknown)"


@contextlib.contextmanager
def store_lock(url: str) -> Iterator[None]:
    """Hold the creation lock of one store (what :func:`create_stores_locked` takes for each).

    A process that reads a store which another may be creating (a test, a monitor) takes it
    too, so that it never opens a half-migrated database.
    """
    path = store_file(url)
    if path is not None:
        with file_lock(path):
            yield
    elif url.startswith("postgresql"):
        with _advisory_lock(url):
            yield
    else:  # a tracking server serialises its own database
        yield


@contextlib.contextmanager
def file_lock(database: Path) -> Iterator[None]:
    """Hold an exclusive lock named after ``database``, in this user's private lock folder.

    The folder (:func:`private_lock_folder`) is ``droptune-locks-<uid>`` in
    the system's temporary folder, mode 0700: no other user can hold, block or break the lock.
    A wait longer than :data:`REPORT_AFTER_S` is reported with the holder's pid.
    """
    digest = hashlib.blake2b(str(database).encode(), digest_size=12).hexdigest()
    with hold(private_lock_folder() / f"{digest}.lock"):
        yield


@contextlib.contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with advisory_lock(engine, CREATE_LOCK_KEY):
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def advisory_lock(engine: Any, key: int) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock ``key`` on a connection of ``engine`` (a SQLAlchemy engine)."""
    import sqlalchemy

    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()
