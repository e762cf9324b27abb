"""Create a study's two stores under a lock, and leave nothing half made when that fails.

Several processes creating a fresh SQLite database (MLflow's or Optuna's) at once race in
the schema migration and crash. :func:`create_stores_locked` serialises store creation on
one machine (a file lock per SQLite store, in the system's temporary folder so that the
study folder gets nothing on a failed start) and across machines (a PostgreSQL advisory
lock). If the start fails inside it, whatever it created goes again: a database file that
did not exist before (a 0-byte or half-migrated one), its journal, folders made for it,
and an Optuna study created by this start.

The Optuna study may also live in an Optuna journal file (``journal:///...``, see
:func:`journal_storage`); this module knows the URLs of both kinds of store file
(:func:`store_file`) and opens either for reading (:func:`open_storage`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from droptune.stores._lock import store_lock
from droptune.stores._urls import journal_file, sqlite_file, store_file

if TYPE_CHECKING:
    from droptune.config import StudySpec

__all__ = ["create_stores_locked", "journal_storage", "open_storage"]

log = logging.getLogger(__name__)

_SIDE_FILES = ("-journal", "-wal", "-shm", ".lock")  # SQLite's, and the journal backend's lock


def journal_storage(path: Path) -> Any:
    """Optuna's :class:`~optuna.storages.JournalStorage` on file ``path`` (its folders made).

    Optuna appends every write to the file as one JSON line (no SQL, no ORM): a report or a
    user attribute costs a fraction of a millisecond against 1-3 ms on SQLite, and that is
    what bounds a packed population's bookkeeping. Several processes on one machine share
    the file (the backend locks it). It has no heartbeats: a dead worker's trials are found
    by its process being gone (:func:`droptune.tuning.reap_dead_trials`). Across machines,
    use PostgreSQL. The storage carries its path as ``droptune_path`` (the study lock's file), and
    can group a trial's writes into one append (:class:`droptune.stores._journal.BatchedJournalStorage`).
    """
    from droptune.stores._journal import BatchedJournalStorage

    path.parent.mkdir(parents=True, exist_ok=True)
    storage = BatchedJournalStorage(str(path))
    storage.droptune_path = path  # type: ignore[attr-defined]
    return storage


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url``, without droptune's tuning (heartbeats, fast commits).

    For reading a study, or checking whether one exists; :func:`droptune.stores.make_storage`
    builds the storage a study runs on. Opening a journal creates the file (Optuna's backend
    does): check that it exists first where nothing may be created.
    """
    import optuna

    from droptune.stores._damage import note

    path = journal_file(url)
    if path is not None:
        return journal_storage(path)
    note(sqlite_file(url))  # a damaged file is named, not a traceback
    return optuna.storages.RDBStorage(url)


@contextlib.contextmanager
def create_stores_locked(spec: StudySpec) -> Iterator[None]:
    """Hold the store-creation lock of ``spec``'s stores; on failure, undo what was created.

    Wrap the code that creates or opens the Optuna study, the MLflow experiment and the
    parent run (``prepare_study``), not the trials.

    Args:
        spec: The study (its ``storage``, ``tracking_uri`` and ``name``).

    Example:
        >>> import tempfile, pathlib
        >>> from droptune.config import spec_from_dict
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> spec = spec_from_dict({"name": "demo", "model": "droptune.testing.TinyModule",
        ...     "data": "droptune.testing.TinyDataModule", "storage": f"sqlite:///{root}/s/optuna.db"})
        >>> with create_stores_locked(spec):
        ...     raise RuntimeError("the disk filled up")
        Traceback (most recent call last):
        ...
        RuntimeError: the disk filled up
        >>> list(root.iterdir())  # the folder made for the store went again
        []
    """
    urls = sorted({spec.storage, spec.tracking_uri})  # sorted: every process takes the locks in one order
    files = [f for f in (store_file(u) for u in urls) if f is not None]
    with contextlib.ExitStack() as locks:
        for url in urls:
            locks.enter_context(store_lock(url))
        # Looked at under the lock: another start may have created the stores while this one waited.
        existed = {f: f.exists() for f in files}
        new_folders = [p for f in files for p in _missing_folders(f.parent)]
        storage_file = store_file(spec.storage)
        study_existed = _study_exists(spec) if storage_file is None or existed[storage_file] else False
        try:
            yield
        except BaseException:
            _undo(spec, files, existed, new_folders, study_existed)
            raise


def _undo(spec: StudySpec, files: list[Path], existed: dict[Path, bool], folders: list[Path], study_existed: bool) -> None:
    """Remove what a failed start created: new database files, their folders, a new Optuna study."""
    storage_file = store_file(spec.storage)
    if not study_existed and (storage_file is None or existed.get(storage_file)):
        _delete_study(spec)  # the storage was there before: only the study is this start's
    for f in files:
        if not existed[f]:
            for path in (f, *(Path(f"{f}{s}") for s in _SIDE_FILES)):
                with contextlib.suppress(OSError):
                    path.unlink()
                    log.info("removed %s, left by a failed start", path)
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: never a user's file


def _missing_folders(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _study_exists(spec: StudySpec) -> bool:
    try:
        storage = open_storage(spec.storage)
        storage.get_study_id_from_name(spec.name)
    except KeyError:
        return False
    except Exception:  # unreachable now: then this start creates nothing we could undo safely
        log.debug("could not look up study %s in %s", spec.name, spec.storage, exc_info=True)
        return True
    return True


def _delete_study(spec: StudySpec) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=spec.name, storage=open_storage(spec.storage))
        log.info("deleted study %s from %s, created by a failed start", spec.name, spec.storage)
    except KeyError:
        pass  # the start failed before creating it
    except Exception:
        log.warning("could not delete study %s from %s after a failed start", spec.name, spec.storage, exc_info=True)
