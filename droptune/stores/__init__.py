"""Optuna storage: URLs, creation under a lock, journal batching and repair, locks, damage, opening a study.

Every module that touches a study's store files goes through this package:

- :mod:`~droptune.stores._storage`: the storage for a URL (SQLite timeout, WAL, journal
  files), and the folder a SQLite MLflow store needs;
- :mod:`~droptune.stores._urls`: which local file a URL names, relative paths made absolute;
- :mod:`~droptune.stores._create`: creating both stores under a lock with nothing left half made;
- :mod:`~droptune.stores._journal` / :mod:`~droptune.stores._journal_file`: Optuna's journal
  storage with batched appends and a torn last line set aside;
- :mod:`~droptune.stores._lock`: every lock droptune takes (a file lock, PostgreSQL's advisory
  lock, the store-creation lock), and :mod:`~droptune.stores._study_lock`: the study lock
  built on them;
- :mod:`~droptune.stores._damage`: a damaged SQLite store named with its repair;
- :mod:`~droptune.stores._open`: opening an existing study by file or name.

Names are loaded on first use: the command line imports this package to report a damaged
store, and must not pay for Optuna and SQLAlchemy to print ``--help``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from droptune.stores._create import (
        create_stores_locked,
        open_storage,
        sqlite_file,
        store_file,
        store_lock,
    )
    from droptune.stores._damage import StoreDamagedError, StoreFullError, damaged_store_error
    from droptune.stores._journal import BatchedJournalStorage, write_batch
    from droptune.stores._open import open_study, study_names
    from droptune.stores._storage import enable_wal, make_storage
    from droptune.stores._study_lock import study_lock

_LAZY = {
    "create_stores_locked": "droptune.stores._create",
    "open_storage": "droptune.stores._create",
    "sqlite_file": "droptune.stores._urls",
    "store_file": "droptune.stores._urls",
    "absolute_sqlite_url": "droptune.stores._urls",
    "require_sqlite_store": "droptune.stores._urls",
    "store_lock": "droptune.stores._lock",
    "StoreDamagedError": "droptune.stores._damage",
    "StoreFullError": "droptune.stores._damage",
    "damaged_store_error": "droptune.stores._damage",
    "BatchedJournalStorage": "droptune.stores._journal",
    "write_batch": "droptune.stores._journal",
    "open_study": "droptune.stores._open",
    "study_names": "droptune.stores._open",
    "enable_wal": "droptune.stores._storage",
    "make_storage": "droptune.stores._storage",
    "study_lock": "droptune.stores._study_lock",
}

__all__ = [
    "BatchedJournalStorage",
    "StoreDamagedError",
    "StoreFullError",
    "absolute_sqlite_url",
    "create_stores_locked",
    "damaged_store_error",
    "enable_wal",
    "make_storage",
    "open_storage",
    "open_study",
    "require_sqlite_store",
    "sqlite_file",
    "store_file",
    "store_lock",
    "study_lock",
    "study_names",
    "write_batch",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'droptune.stores' has no attribute {name!r}")
