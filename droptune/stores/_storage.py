"""Where a study is kept: the Optuna storage and the MLflow tracking store, in one place.

Defaults (:data:`DEFAULT_STORAGE`, :data:`DEFAULT_TRACKING_URI`, defined with the study file
format in :mod:`droptune.config`): ``sqlite:///studies/droptune.db`` (Optuna) and
``sqlite:///mlruns/mlflow.db`` (MLflow, artifacts in ``mlruns/artifacts``). Relative SQLite paths are resolved against the
directory the command runs in. PostgreSQL (or any SQLAlchemy URL) serves several machines.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

from droptune.config import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
from droptune.exceptions import ConfigError
from droptune.stores._create import journal_storage
from droptune.stores._damage import note
from droptune.stores._urls import absolute_sqlite_url, journal_file, sqlite_file

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_STORAGE",
    "DEFAULT_TRACKING_URI",
    "SQLITE_TIMEOUT_S",
    "artifact_root",
    "enable_wal",
    "fast_commits",
    "make_storage",
    "prepare_store",
]

# Several processes write one SQLite file: wait for the lock rather than fail at once.
SQLITE_TIMEOUT_S = 60


def make_storage(url: str, *, heartbeat_interval: int | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``; SQLite folders are created, locks waited for.

    With ``heartbeat_interval``, running trials beat; a trial whose worker died is failed
    after a grace period (4 intervals) and retried once with the same parameters. A SQLite
    database is switched to write-ahead logging (:func:`enable_wal`, :func:`fast_commits`).
    A ``journal:///`` URL gives Optuna's journal file (:func:`droptune.stores._create.journal_storage`:
    one machine, no heartbeats, the fastest writes).
    """
    import optuna

    from droptune.stores._rdb_batch import BatchedRDBStorage

    url = absolute_sqlite_url(url)
    journal = journal_file(url)
    if journal is not None:
        return journal_storage(journal)
    fast_commits()
    engine_kwargs: dict[str, Any] = {}
    path = sqlite_file(url)
    note(path)  # a damaged file is named, not a traceback
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    heartbeat: dict[str, Any] = {}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0; droptune relies on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat_interval:
            heartbeat = {
                "heartbeat_interval": heartbeat_interval,
                "grace_period": heartbeat_interval * 4,
                "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            }
        storage = BatchedRDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)  # one commit per batch
    if path is not None and enable_wal(url):
        storage.engine.dispose()  # pooled connections opened before WAL: reopen them with fast commits
    return storage


def fast_commits() -> None:
    """Let SQLite databases in WAL mode commit without waiting for the disk (``synchronous=NORMAL``).

    Each Optuna or MLflow write is one transaction; with SQLite's default (FULL) every commit
    waits for an fsync, 2-3 ms here, which bounds a population's per-epoch writes. In WAL mode,
    NORMAL loses nothing when a process dies (committed transactions are in the WAL file); only
    the last commits before an operating-system crash or power loss may be lost, never the
    database's consistency. Databases not in WAL mode keep SQLite's default. Installed once per
    process, for every SQLAlchemy connection pool.
    """
    global _FAST_COMMITS
    if _FAST_COMMITS:
        return
    import sqlalchemy.event
    import sqlalchemy.pool

    sqlalchemy.event.listen(sqlalchemy.pool.Pool, "connect", _normal_sync_in_wal)
    _FAST_COMMITS = True


_FAST_COMMITS = False


def _normal_sync_in_wal(connection: Any, record: Any) -> None:
    import sqlite3

    if not isinstance(connection, sqlite3.Connection):
        return
    cursor = connection.cursor()
    try:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def enable_wal(url: str) -> bool:
    """Switch an existing SQLite database to write-ahead logging (other URLs: nothing to do).

    In WAL mode readers (progress bars, idle workers) do not block the writer and writers
    wait less. The mode is stored in the database file, so the launching process sets it
    once for every later connection. Like SQLite itself, it needs a local file system.

    Returns:
        Whether the mode was switched now.
    """
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return False
    import sqlite3

    connection = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
            return True
    except sqlite3.OperationalError as err:  # busy: another process has it open; WAL is an optimisation
        log.debug("could not enable WAL on %s: %s", path, err)
    finally:
        connection.close()
    return False


def artifact_root(tracking_uri: str) -> str | None:
    """Where artifacts go: ``artifacts/`` beside a SQLite store; the server's choice otherwise."""
    path = sqlite_file(tracking_uri)
    return (path.parent.resolve() / "artifacts").as_uri() if path is not None else None


def prepare_store(tracking_uri: str) -> None:
    """Create the folder of a SQLite store so MLflow can create the database in it.

    Raises:
        ConfigError: For MLflow's old file store, which MLflow 3 refuses.
    """
    path = sqlite_file(tracking_uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif tracking_uri.startswith("file:") or "://" not in tracking_uri:
        raise ConfigError(
            f"tracking_uri {tracking_uri!r}: MLflow 3 refuses the old file store; use "
            f"{DEFAULT_TRACKING_URI!r} (the default) or an http(s):// tracking server."
        )
