"""Open a study the way the command line names it: a study file or a study name."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna

from droptune.config import DEFAULT_STORAGE, load_config
from droptune.exceptions import ConfigError, DroptuneError, StudyError
from droptune.stores._create import open_storage
from droptune.stores._damage import damaged_store_error
from droptune.stores._urls import require_sqlite_store

log = logging.getLogger(__name__)



def open_study(ref: str, *, storage: str | None = None) -> optuna.Study:
    """Load an existing study from a study file or a study name.

    Args:
        ref: The path of a study file (its ``name`` and ``storage`` are used), or the name
            of a study in ``storage``.
        storage: Optuna storage URL; overrides a study file's. Defaults to the file's, or
            ``sqlite:///studies/droptune.db`` for a name.

    Returns:
        The study (nothing is created: a study or storage that does not exist is an error).

    Raises:
        StudyError: If the storage holds no study of that name (the message lists those
            it holds) or a SQLite storage file does not exist.
        ConfigError: If the study file is invalid or the storage URL cannot be opened.
    """
    path = Path(ref)
    if path.is_file():
        spec = load_config(path)
        name, storage = spec.name, storage or spec.storage
    else:
        name, storage = ref, storage or DEFAULT_STORAGE
    names = study_names(storage)
    if name not in names:
        hint = ""
        if path.suffix.lower() in (".yaml", ".yml"):
            hint = f" There is no file {ref!r} either (looked in {Path.cwd()})."
        listed = ", ".join(repr(n) for n in sorted(names)) or "none"
        raise StudyError(f"no study named {name!r} in {storage}; the studies there are: {listed}.{hint}")
    from droptune.stores._storage import make_storage  # the engine's storage settings (SQLite timeout...)

    return optuna.load_study(study_name=name, storage=make_storage(storage))


def study_names(storage: str) -> list[str]:
    """Names of the studies in ``storage``, which must exist (nothing is created)."""
    require_sqlite_store(storage, what="Optuna storage", flag="--storage")
    try:
        return optuna.get_all_study_names(open_storage(storage))
    except DroptuneError:
        raise
    except Exception as err:  # noqa: BLE001  (sqlalchemy raises its own errors for bad URLs)
        damaged = damaged_store_error(err)
        if damaged is not None:
            raise damaged from None
        raise ConfigError(f"cannot open Optuna storage {storage!r}: {type(err).__name__}: {err}") from None
