"""Studies: create or resume one, run trials until it holds n_trials, close it.

The launching process prepares everything shared (Optuna study, MLflow experiment, parent
run, the prior trial) before any worker starts, because fresh SQLite databases race in
their schema migrations. Workers then loop ask -> run_trial -> tell on the shared storage.
droptune drives Optuna's ask/tell itself rather than ``study.optimize`` because it must
count finished trials across all workers and resumes, ask several trials at once for packed
populations, and close MLflow runs on every way a trial can end.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from droptune.config import StudySpec
from droptune.exceptions import StudyError
from droptune.space import SearchSpace
from droptune.tracking import MlflowTracker
from droptune.tuning._build import build, model_sites
from droptune.tuning._factories import PRUNERS, SAMPLERS, make_storage
from droptune.tuning._objective import PRIOR_ATTR, REASON_ATTR, TrialContext, TrialResult, run_trial

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"
SPEC_ATTR = "study_file"
WORKER_ATTR = "worker"  # "host:pid" of the process running a trial
MAX_CONSECUTIVE_FAILURES = 5

ProgressFn = Callable[[optuna.Study], None]


@dataclass
class Counts:
    """Trials of a study by state."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        """Trials that count toward ``n_trials``: complete or pruned (failed ones are redone)."""
        return self.complete + self.pruned


def count_trials(study: optuna.Study) -> Counts:
    """Count a study's trials by state."""
    counts = Counts()
    names = {
        TrialState.COMPLETE: "complete",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
        TrialState.RUNNING: "running",
        TrialState.WAITING: "waiting",
    }
    for trial in study.get_trials(deepcopy=False):
        setattr(counts, names[trial.state], getattr(counts, names[trial.state]) + 1)
    return counts


def space_of(spec: StudySpec) -> SearchSpace:
    """The search space a study file describes."""
    s = spec.search
    return SearchSpace(granularity=s.granularity, ranges=s.ranges, include=s.include, exclude=s.exclude)


def load_study(spec: StudySpec, *, worker: int = 0, heartbeat_interval: int | None = None) -> optuna.Study:
    """Create the study or load it (resume); the sampler is seeded anew for each worker and run.

    Optuna does not store samplers. Seeding from the trial count and worker index keeps a
    resumed or parallel run from replaying the random start-up trials already made.
    """
    storage = make_storage(spec.storage, heartbeat_interval=heartbeat_interval)
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        direction=spec.objective.direction,
        pruner=PRUNERS[spec.search.pruner](spec),
        load_if_exists=True,
    )
    n_existing = len(study.get_trials(deepcopy=False))
    study.sampler = SAMPLERS[spec.search.sampler](spec.seed + 7919 * worker + n_existing)
    return study


def prepare_study(spec: StudySpec) -> tuple[optuna.Study, MlflowTracker, str]:
    """Check the model, then create (or reopen) the study, experiment and parent run.

    Returns:
        The study, its tracker and the parent run id.

    Raises:
        ConfigError: If the model has no dropout site to tune (nothing is created then).
    """
    model, data = build(spec)
    space = space_of(spec)
    sites = space.select(model_sites(spec, model, data))
    study = load_study(spec)
    if study.direction.name.lower() != spec.objective.direction:
        raise StudyError(
            f"study {spec.name!r} in {spec.storage} was created to {study.direction.name.lower()}; "
            f"the study file says {spec.objective.direction}. Use another name."
        )
    tracker = MlflowTracker(tracking_uri=spec.tracking_uri, experiment=spec.name)
    parent = tracker.study_run(study.user_attrs.get(PARENT_RUN_ATTR))
    study.set_user_attr(PARENT_RUN_ATTR, parent)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(space.prior_params(sites), user_attrs={PRIOR_ATTR: True})
        if spec.source:
            tracker.log_artifact(parent, spec.source)
    return study, tracker, parent


def run_worker(
    spec: StudySpec,
    *,
    study: optuna.Study | None = None,
    worker: int = 0,
    progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> Counts:
    """Run trials of a prepared study until it holds ``n_trials`` finished trials.

    Args:
        spec: The study.
        study: The loaded study (loaded from ``spec`` when None).
        worker: Index of this worker, to seed its sampler apart from the others.
        progress: Called with the study after each trial.
        deadline: ``time.monotonic()`` after which no new trial starts.

    Returns:
        The study's counts when this worker stopped.
    """
    study = study or load_study(spec, worker=worker)
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None:
        raise StudyError(f"study {spec.name!r} was not prepared: run `droptune tune` first.")
    ctx = TrialContext(
        spec=spec,
        space=space_of(spec),
        tracker=MlflowTracker(tracking_uri=spec.tracking_uri, experiment=spec.name),
        parent_run_id=parent,
    )
    if spec.search.pack > 1:
        from droptune.packing import run_packed_worker  # only packed studies need torch.func

        return run_packed_worker(ctx, study, progress=progress, deadline=deadline)
    failures = 0
    while True:
        counts = count_trials(study)
        if counts.finished + counts.running >= spec.search.n_trials:
            return counts
        if deadline is not None and time.monotonic() >= deadline:
            return counts
        trial = study.ask()
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        try:
            result = run_trial(ctx, trial)
        except BaseException as err:  # Ctrl-C or a study-level error: close the trial, then stop
            trial.set_user_attr(REASON_ATTR, f"{type(err).__name__}: {err}"[:2000] or "interrupted")
            study.tell(trial, state=TrialState.FAIL)
            raise
        tell(study, trial, result)
        failures = failures + 1 if result.state == "failed" else 0
        if progress is not None:
            progress(study)
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise StudyError(
                f"{failures} trials in a row failed; the last one because: {result.reason}. "
                "Fix the model or data, then run the same command to resume."
            )


def tell(study: optuna.Study, trial: optuna.Trial, result: TrialResult) -> None:
    """Record a trial's outcome in the study."""
    if result.state == "complete" and result.value is not None and math.isfinite(result.value):
        study.tell(trial, result.value)
    elif result.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        log.warning("trial %d failed: %s", trial.number, (result.reason or "").splitlines()[0] if result.reason else "")
        study.tell(trial, state=TrialState.FAIL)


def finish_study(study: optuna.Study, tracker: MlflowTracker, parent: str, *, status: str = "FINISHED") -> Counts:
    """Log the study's summary on its parent run and close it."""
    counts = count_trials(study)
    summary = {"n_complete": counts.complete, "n_pruned": counts.pruned, "n_failed": counts.failed}
    if counts.complete:
        summary["best_value"] = study.best_value
        summary["best_trial"] = study.best_trial.number
    tracker.log_study_summary(parent, summary)
    tracker.end_study(parent, status=status)
    return counts


def tune(
    spec: StudySpec,
    *,
    progress: ProgressFn | None = None,
    prepared: tuple[optuna.Study, MlflowTracker, str] | None = None,
) -> optuna.Study:
    """Prepare (unless ``prepared`` is given), run and close a study in this process.

    This is ``droptune tune`` without the command line. Interrupted or failed, the parent
    run ends KILLED and the trials already finished stay; the same call resumes.
    """
    study, tracker, parent = prepared or prepare_study(spec)
    deadline = time.monotonic() + spec.search.timeout if spec.search.timeout else None
    try:
        run_worker(spec, study=study, progress=progress, deadline=deadline)
    except BaseException:
        finish_study(study, tracker, parent, status="KILLED")
        raise
    finish_study(study, tracker, parent)
    return study
