"""Wait until a study is prepared, for job arrays whose workers start before (or with) the launcher.

A job array (Slurm) or an indexed Job (Kubernetes) starts ``droptune tune`` in one task and
``droptune worker`` in the others, all at once; a worker refuses a study that ``droptune
tune`` has not prepared yet. ``droptune wait STUDY_FILE [--storage URL]
[--timeout S]`` polls the storage until the study and its MLflow parent run exist, then
exits 0 (1 on timeout), so the job script can ``exec droptune worker`` after it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from droptune.config import StudySpec

__all__ = ["study_ready", "wait_until_ready"]

log = logging.getLogger(__name__)

POLL_S = 5.0


def study_ready(spec: StudySpec) -> bool:
    """Whether ``droptune tune`` has prepared the study (it sets the parent run last).

    A storage that cannot be reached yet (a database server still starting) counts as not ready.
    """
    import optuna

    from droptune.record import PARENT_RUN_ATTR
    from droptune.stores._create import open_storage
    from droptune.stores._lock import store_lock
    from droptune.stores._urls import store_file

    try:
        # Under the creation lock: opening a database that `droptune tune` is creating races
        # in its schema migration (and makes the creator fail).
        with store_lock(spec.storage):
            database = store_file(spec.storage)
            if database is not None and not database.is_file():
                return False  # never create the database: that is `droptune tune`'s job
            study = optuna.load_study(study_name=spec.name, storage=open_storage(spec.storage))
    except KeyError:
        return False
    except Exception as err:  # a database server that is not up yet
        log.info("storage %s not reachable yet: %s", spec.storage, str(err).splitlines()[0] if str(err) else err)
        return False
    return PARENT_RUN_ATTR in study.user_attrs


def wait_until_ready(spec: StudySpec, *, timeout: float, poll: float = POLL_S) -> bool:
    """Poll :func:`study_ready` every ``poll`` seconds for at most ``timeout`` seconds.

    Returns:
        True once the study is ready, False if ``timeout`` passed first.
    """
    end = time.monotonic() + timeout
    while True:
        if study_ready(spec):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(min(poll, max(0.0, end - time.monotonic())))
