"""``droptune worker``: join a study from another shell or machine.

The study must have been prepared by ``droptune tune`` (which creates the Optuna study, the
MLflow experiment and the parent run once, before any worker: fresh SQLite databases race
in their schema migrations otherwise). A worker then runs trials, logged as child runs of
the same parent, until the study holds ``n_trials`` finished trials; it waits while the
last trials run elsewhere, in case one of them fails or its worker dies. A worker never
closes the parent run: ``droptune tune`` does (run it again to close a study whose launcher
was stopped).
"""

from __future__ import annotations

import argparse
import logging
import time
import zlib
from pathlib import Path

from droptune.commands._base import command, err, quiet_libraries, say
from droptune.commands._study_args import add_study_arguments, spec_from_args
from droptune.config import StudySpec
from droptune.exceptions import StudyError
from droptune.record import PARENT_RUN_ATTR
from droptune.stores._urls import require_sqlite_store

log = logging.getLogger(__name__)

# Flags of `droptune tune` that a launched worker gets too (the others configure the launcher).
FORWARDED = ("n_trials", "timeout", "storage", "tracking_uri", "max_epochs", "accelerator", "pack", "heartbeat_interval")


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """``droptune tune``'s study arguments, and the launcher's private ones."""
    add_study_arguments(parser)
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (the launcher of `droptune tune --workers` shows one)"
    )
    parser.add_argument(
        "--confirm", action="store_true",
        help="join the study's confirmation (started by `droptune confirm`) instead of its search",
    )


def worker_args(args: argparse.Namespace) -> list[str]:
    """The ``droptune worker`` arguments that reproduce ``droptune tune``'s study and overrides."""
    argv = [str(Path(args.study_file).resolve())]
    for key in FORWARDED:
        value = getattr(args, key, None)
        if value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


@command("worker", add_worker_arguments, help="join a study prepared by `droptune tune`, from any shell or machine")
def worker_command(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    check_stores(spec)
    from droptune import preflight  # a server down: one message, in seconds
    from droptune.commands._live import EpochTap
    from droptune.commands._progress import trial_progress
    from droptune.tracking import tracker_for
    from droptune.tuning import load_study, run_worker
    from droptune.tuning._heartbeat import worker_id

    quiet_libraries(getattr(args, "debug", False))

    preflight.check_storage_url(spec.storage)
    preflight.check_tracking_uri(spec.tracking_uri)
    index = args.worker_index if args.worker_index is not None else 1000 + zlib.crc32(worker_id().encode()) % 100_000
    if args.confirm:  # the confirmation's trials (droptune confirm), not the search's
        from droptune.tuning._confirm import open_confirmation

        spec, study = open_confirmation(spec, worker=index)
    else:
        study = load_study(spec, worker=index, create=False)
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None:
        raise StudyError(f"study {spec.name!r} has no MLflow parent run yet: run `droptune tune` on it first.")
    tracker = EpochTap(tracker_for(spec))  # the trials' epochs are shown as they end
    if not tracker.has_study_run(parent):
        raise StudyError(
            f"the MLflow parent run {parent} of study {spec.name!r} is not in experiment {spec.name!r} "
            f"of {spec.tracking_uri}: pass the --tracking-uri the study was prepared with."
        )
    log.info("worker %s joins study %s in %s, tracked in %s", worker_id(), spec.name, spec.storage, spec.tracking_uri)
    if args.quiet:
        counts = run_worker(spec, study=study, tracker=tracker, worker=index, deadline=_deadline(spec))
    else:
        with trial_progress(
            spec.name, spec.search.n_trials, study, console=err, metric=spec.objective.metric,
            max_epochs=spec.trainer.max_epochs, tap=tracker,
        ) as update:
            counts = run_worker(spec, study=study, tracker=tracker, worker=index, progress=update, deadline=_deadline(spec))
    say(err, f"worker {worker_id()} done: study {spec.name} holds {counts.finished} finished trials.")
    return 0


def check_stores(spec: StudySpec) -> None:
    """Refuse to create SQLite stores from a worker: only ``droptune tune`` creates them."""
    require_sqlite_store(spec.storage, what="Optuna storage", flag="--storage")
    require_sqlite_store(spec.tracking_uri, what="MLflow store", flag="--tracking-uri")


def _deadline(spec: StudySpec) -> float | None:
    return time.monotonic() + spec.search.timeout if spec.search.timeout else None
