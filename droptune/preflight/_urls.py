"""Check a study's store URLs before anything is written: they parse, and their server answers.

Each check is bounded in time (``timeout`` seconds, a few by default) so that a mistyped
host or a stopped server is one message in seconds, not a traceback after minutes of
retries. File stores (SQLite, an Optuna journal) are checked where they will be created: the
folder must be (or be creatable in) a writable folder, and an existing file must be of its kind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from droptune._io import os_error_reason
from droptune.config import NO_TRACKING
from droptune.exceptions import ConfigError, StudyError
from droptune.stores._urls import JOURNAL_PREFIX, journal_file
from droptune.tracking._registry import MLFLOW_SCHEMES, TRACKERS

__all__ = ["DEFAULT_TIMEOUT_S", "TRACKING_SCHEMES", "check_storage_url", "check_tracking_uri"]

DEFAULT_TIMEOUT_S = 5.0
# Tracking URIs MLflow 3 serves: a database (SQLAlchemy store) or a tracking server.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
TRACKING_SCHEMES = MLFLOW_SCHEMES  # the schemes MLflow serves; any tracker registered in TRACKERS is accepted
_EXAMPLES = (
    "e.g. sqlite:///studies/droptune.db, journal:///studies/droptune.journal (Optuna storage only) "
    "or postgresql+psycopg://user:password@host:5432/droptune"
)


def check_storage_url(
    url: str, timeout: float = DEFAULT_TIMEOUT_S, *, what: str = "Optuna storage", key: str = "storage"
) -> None:
    """Check that a database URL parses, its driver imports and its database can be reached.

    Args:
        url: A SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).
        timeout: Seconds to wait for a server to answer.
        what: What the store is, for messages.
        key: The study-file key and flag it came from (``storage`` -> ``--storage``).

    Raises:
        ConfigError: If the URL does not parse or names a database or driver that is unknown.
        StudyError: If the database cannot be reached or written.

    Example:
        >>> check_storage_url("notaurl")
        Traceback (most recent call last):
        ...
        droptune.exceptions.ConfigError: storage 'notaurl' (--storage) is not a database URL; ...
    """
    import sqlalchemy
    from sqlalchemy.engine import make_url

    where = f"{key} {_hide_password(url)!r} (--{key.replace('_', '-')})"
    if key == "storage" and url.startswith("journal:"):  # Optuna's journal file (no SQL)
        path = journal_file(url)
        if path is None:
            raise ConfigError(f"{where} names no file; expected e.g. {JOURNAL_PREFIX}studies/droptune.journal.")
        _check_file(path, where, what, is_store=_is_journal, kind="an Optuna journal", noun="journal file",
                    example="droptune.journal")
        return
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:  # a subclass of ArgumentError: first
        raise ConfigError(
            f"{where}: unknown database {parsed.drivername!r}; use sqlite or postgresql ({_EXAMPLES})."
        ) from None
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"{where} is not a database URL; expected {_EXAMPLES}.") from None
    try:
        dialect.import_dbapi()
    except ImportError as err:
        fix = ""
        if parsed.get_backend_name() == "postgresql":
            fix = " Use postgresql+psycopg://... (psycopg 3: pip install 'droptune[postgres]')."
        raise ConfigError(f"{where}: its driver does not import: {err}.{fix}") from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed.database, where, what)
    else:
        _check_server(url, timeout, where, what)


def check_tracking_uri(uri: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Check that a tracking URI names a registered tracker and, for MLflow, that its store answers.

    Args:
        uri: ``sqlite:///mlruns/mlflow.db``, ``http(s)://host:port`` or another database URL.
        timeout: Seconds to wait for a server to answer.

    Raises:
        ConfigError: For a scheme MLflow 3 does not serve (``foo://``, a plain folder, ``file:``).
        StudyError: If the store or server cannot be reached.

    Example:
        >>> check_tracking_uri("foo://bar")
        Traceback (most recent call last):
        ...
        droptune.exceptions.ConfigError: tracking_uri 'foo://bar' (--tracking-uri): unsupported scheme 'foo'; ...
    """
    if uri == NO_TRACKING:  # no MLflow at all: nothing to reach
        return
    where = f"tracking_uri {_hide_password(uri)!r} (--tracking-uri)"
    scheme = urlsplit(uri).scheme.lower()
    backend = scheme.split("+")[0]
    if backend in ("", "file") or len(scheme) == 1:  # a path (or a Windows drive letter)
        raise ConfigError(
            f"{where}: MLflow 3 refuses the old file store; use sqlite:///mlruns/mlflow.db (the default) "
            "or an http(s):// tracking server."
        )
    if backend not in TRACKERS:
        schemes = ", ".join(s for s in TRACKERS if s != NO_TRACKING)
        raise ConfigError(f"{where}: unsupported scheme {scheme!r}; use one of: {schemes}, or {NO_TRACKING}.")
    if backend in DATABASE_SCHEMES:
        check_storage_url(uri, timeout, what="MLflow tracking store", key="tracking_uri")
    elif backend in ("http", "https"):
        _check_http(uri, timeout, where)


def _check_sqlite(database: str | None, where: str, what: str) -> None:
    if not database or database == ":memory:":
        return
    _check_file(Path(database), where, what, is_store=_is_sqlite, kind="a SQLite database", noun="database file",
                example="droptune.db")


def _check_file(
    path: Path, where: str, what: str, *, is_store: Callable[[Path], bool], kind: str, noun: str, example: str
) -> None:
    """A store file: if it exists, a readable, writable file of its kind; else a folder it can be made in."""
    if path.exists():
        if not path.is_file():
            raise StudyError(f"{where}: {path} is a folder, not a {noun}. Name a file, e.g. {path}/{example}.")
        if not is_store(path):
            raise StudyError(f"{where}: {path} exists but is not {kind}. Point {what} at another file.")
        if not os.access(path, os.R_OK | os.W_OK):
            raise StudyError(f"{where}: {path} is not readable and writable by this user.")
        return
    existing = next(p for p in (path.parent, *path.parents) if p.exists())
    if not existing.is_dir():
        raise StudyError(
            f"{where}: cannot create {path}: {existing} is a file, not a folder. Choose another path, "
            "or move that file away."
        )
    _probe_writable(existing, where, what)


def _is_journal(path: Path) -> bool:
    """Whether an existing file is an Optuna journal (or empty): JSON lines, each an operation."""
    with path.open("rb") as handle:
        first = handle.readline(1 << 16).strip()
    if not first:
        return True
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _is_sqlite(path: Path) -> bool:
    """Whether an existing file is a SQLite database (or empty), asked of SQLite itself.

    Never ``open()`` and close the file here: closing any descriptor of a database drops the
    POSIX locks that this process's connections hold on it (a second ``tune`` in one process,
    a notebook), and another process may then checkpoint and delete the write-ahead log under
    them, which corrupts the database. SQLite keeps its own descriptors open while it holds locks.
    """
    import sqlite3

    connection = sqlite3.connect(path, timeout=DEFAULT_TIMEOUT_S)
    try:
        connection.execute("PRAGMA schema_version").fetchone()  # reads and checks the header
    except sqlite3.DatabaseError as err:
        return "not a database" not in str(err)  # busy or locked: a database all the same
    finally:
        connection.close()
    return True


def _probe_writable(folder: Path, where: str, what: str) -> None:
    """Write (then remove) a small file where the store will be created: read-only or full disks fail here."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".droptune-probe-", dir=folder)
    except OSError as err:
        raise StudyError(f"{where}: cannot create the {what} in {folder}: {os_error_reason(err)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * 65536)  # SQLite needs a few pages at once to create its schema
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise StudyError(f"{where}: cannot create the {what} in {folder}: {os_error_reason(err)}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def _check_server(url: str, timeout: float, where: str, what: str) -> None:
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    connect_args = {"connect_timeout": max(1, round(timeout))} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()
        host = (parsed.host or "localhost") + (f":{parsed.port}" if parsed.port else "")
        raise StudyError(
            f"{where}: the {what} at {host} does not answer within {timeout:g} s or refuses the connection "
            f"({reason[0] if reason else type(err).__name__}). Start the database server, or fix the host, port, "
            "user, password or database name in the URL."
        ) from None
    finally:
        engine.dispose()


def _check_http(uri: str, timeout: float, where: str) -> None:
    health = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:  # noqa: S310  (http(s) only, checked above)
            response.read(64)
    except urllib.error.HTTPError as err:
        if err.code >= 500:
            raise StudyError(f"{where}: the tracking server answers {health} with HTTP {err.code}.") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise StudyError(
            f"{where}: no MLflow tracking server answers at {uri} within {timeout:g} s ({reason}). Start it "
            "(mlflow server --host 127.0.0.1 --port 5000 ...) or fix the URI."
        ) from None


def _hide_password(url: str) -> str:
    """The URL with its password masked, for messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url
