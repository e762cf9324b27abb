"""A lock shared by every worker of a study, held while one decides whether to start a trial.

Counting a study's trials and asking for a new one must happen as one step, or two workers
that both see one slot left both take it and the study overshoots ``n_trials``. The lock is
whatever the storage offers across processes and machines:

- SQLite: an ``fcntl`` lock on a file beside the database (one machine, as SQLite itself);
- an Optuna journal file: an ``fcntl`` lock named after it (one machine, as the journal);
- PostgreSQL: a session-level ``pg_advisory_lock`` on a connection of the storage's engine;
- anything else: no lock (a study may then run a trial or two more than asked).

Both real locks are released by the operating system or the server when their holder dies,
so a killed worker never leaves the study locked. A wait on a file lock longer than
:data:`droptune.stores._lock.REPORT_AFTER_S` is reported once, with the holder's pid.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna

from droptune.stores._lock import advisory_lock, file_lock, hold

log = logging.getLogger(__name__)


def study_lock(storage: optuna.storages.BaseStorage, study_name: str) -> contextlib.AbstractContextManager[None]:
    """Hold the lock of study ``study_name`` in ``storage`` (blocks until it is free).

    Args:
        storage: An RDB storage, or the cache Optuna wraps around one (``study._storage``).
        study_name: The study's name.

    Example:
        >>> import optuna
        >>> storage = optuna.storages.RDBStorage("sqlite:///:memory:")
        >>> with study_lock(storage, "demo"):
        ...     pass
    """
    journal = getattr(storage, "droptune_path", None)  # see droptune.stores._create.journal_storage
    if journal is not None:  # one machine: a lock file (in the temporary folder) named after the journal
        return file_lock(Path(f"{journal}.study"))
    rdb = getattr(storage, "_backend", storage)  # optuna.Study wraps RDB storages in a cache
    if not isinstance(rdb, optuna.storages.RDBStorage):
        return _no_lock(rdb, study_name)
    return LOCKS.get(rdb.engine.dialect.name, _no_lock)(rdb, study_name)


@contextlib.contextmanager
def _file_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    database = storage.engine.url.database
    if not database or database == ":memory:":  # one process only: nothing to share
        yield
        return
    with hold(Path(f"{database}.lock"), mode=0o666):  # beside the database: whoever may write it may lock it
        yield


@contextlib.contextmanager
def _advisory_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    with advisory_lock(storage.engine, lock_key(study_name)):
        yield


@contextlib.contextmanager
def _no_lock(storage: optuna.storages.BaseStorage, study_name: str) -> Iterator[None]:
    log.debug("no cross-process lock for %s: n_trials may be exceeded slightly", type(storage).__name__)
    yield


def lock_key(study_name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``, derived from the study name."""
    digest = hashlib.blake2b(f"droptune:{study_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


LOCKS: dict[str, Callable[[optuna.storages.RDBStorage, str], contextlib.AbstractContextManager[None]]] = {
    "sqlite": _file_lock,
    "postgresql": _advisory_lock,
}
