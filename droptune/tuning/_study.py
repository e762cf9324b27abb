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
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from droptune.config import StudySpec
from droptune.exceptions import StudyError
from droptune.recommend import report_study
from droptune.space import SearchSpace
from droptune.tracking import MlflowTracker
from droptune.tuning._build import build, model_sites
from droptune.tuning._factories import PRUNERS, SAMPLERS, enable_wal, make_storage
from droptune.tuning._heartbeat import Heartbeat, heartbeat_interval, mark_worker, reap_dead_trials
from droptune.tuning._lock import study_lock
from droptune.tuning._objective import PRIOR_ATTR, REASON_ATTR, TrialContext, TrialResult, run_trial

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"
MAX_CONSECUTIVE_FAILURES = 5
IDLE_POLL_S = 1.0  # how often a worker with nothing to start looks again

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
    return SearchSpace(
        granularity=s.granularity, ranges=s.ranges, include=s.include, exclude=s.exclude,
        coarse_trials=s.coarse_trials,
    )


def load_study(spec: StudySpec, *, worker: int = 0, create: bool = True) -> optuna.Study:
    """Create the study or load it (resume); the sampler is seeded anew for each worker and run.

    Optuna does not store samplers. Seeding from the trial count and worker index keeps a
    resumed or parallel run from replaying the random start-up trials already made. The
    storage beats for running trials every ``spec.search.heartbeat_interval`` seconds.

    Raises:
        StudyError: If ``create`` is False and the storage has no such study.
    """
    storage = make_storage(spec.storage, heartbeat_interval=spec.search.heartbeat_interval)
    pruner = PRUNERS[spec.search.pruner](spec)
    if create:
        study = optuna.create_study(
            study_name=spec.name,
            storage=storage,
            direction=spec.objective.direction,
            pruner=pruner,
            load_if_exists=True,
        )
    else:
        try:
            study = optuna.load_study(study_name=spec.name, storage=storage, pruner=pruner)
        except KeyError:
            raise StudyError(
                f"no study {spec.name!r} in {spec.storage}: run `droptune tune {spec.source or 'STUDY_FILE'}` "
                "with the same --storage first (it creates the study, the MLflow experiment and the parent run)."
            ) from None
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
    enable_wal(spec.storage)
    if study.direction.name.lower() != spec.objective.direction:
        raise StudyError(
            f"study {spec.name!r} in {spec.storage} was created to {study.direction.name.lower()}; "
            f"the study file says {spec.objective.direction}. Use another name."
        )
    tracker = MlflowTracker(tracking_uri=spec.tracking_uri, experiment=spec.name)
    enable_wal(spec.tracking_uri)
    parent = tracker.study_run(study.user_attrs.get(PARENT_RUN_ATTR))
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(space.prior_params(sites), user_attrs={PRIOR_ATTR: True})
        if spec.source:
            tracker.log_artifact(parent, spec.source)
    # Last: `droptune worker` takes this attribute as the sign that the study is ready to join.
    study.set_user_attr(PARENT_RUN_ATTR, parent)
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

    Any number of workers, in this and other processes or machines, may run one study: see
    :func:`next_trial`. A worker with nothing left to start waits while the last trials run
    elsewhere, so that it can redo one that fails or whose worker dies (see
    :mod:`droptune.tuning._heartbeat`). Each running trial beats every
    ``spec.search.heartbeat_interval`` seconds.

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
    failures, waited = 0, False
    while True:
        trial, counts = next_trial(study, spec, ctx, deadline)
        if trial is None:
            if counts.finished >= spec.search.n_trials or _past(deadline):
                return counts
            waited = _wait_for_others(counts, waited)
            continue
        waited = False
        with Heartbeat(study._storage, heartbeat_interval(study)) as beat:
            beat.add(trial._trial_id)
            result = _run_one(ctx, study, trial)
        if result is None:
            continue
        tell(study, trial, result)
        failures = failures + 1 if result.state == "failed" else 0
        if progress is not None:
            progress(study)
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise StudyError(
                f"{failures} trials in a row failed; the last one because: {result.reason}. "
                "Fix the model or data, then run the same command to resume."
            )


def next_trial(
    study: optuna.Study, spec: StudySpec, ctx: TrialContext | None = None, deadline: float | None = None
) -> tuple[optuna.Trial | None, Counts]:
    """Start the study's next trial, or return None when ``n_trials`` are finished or running.

    Under the study's lock (see :mod:`droptune.tuning._lock`): trials of dead workers are
    failed and requeued first, then the count and the ask happen as one step, so several
    workers never start more than ``n_trials`` trials between them. Failed trials do not
    count: they are redone.
    """
    with study_lock(study._storage, study.study_name):
        reap_dead_trials(study, tracker=ctx.tracker if ctx else None, parent_run_id=ctx.parent_run_id if ctx else None)
        counts = count_trials(study)
        if counts.finished + counts.running >= spec.search.n_trials or _past(deadline):
            return None, counts
        with warnings.catch_warnings():  # droptune beats itself: see droptune.tuning._heartbeat
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask()
        mark_worker(trial)
    return trial, counts


def _run_one(ctx: TrialContext, study: optuna.Study, trial: optuna.Trial) -> TrialResult | None:
    """Run one trial; Ctrl-C (or SIGINT) fails it with the reason and stops the worker.

    Returns None if another worker failed the trial meanwhile (its heartbeat was lost).
    """
    try:
        return run_trial(ctx, trial)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was failed by another worker (heartbeat lost): its result is dropped", trial.number)
        return None
    except BaseException as err:  # Ctrl-C or a study-level error: close the trial, then stop
        # Lightning turns Ctrl-C during fit into SystemExit(1) and ignores SIGINT from then on.
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
        reason = f"interrupted by Ctrl-C or SIGINT ({type(err).__name__})" if interrupted else f"{type(err).__name__}: {err}"
        trial.set_user_attr(REASON_ATTR, reason[:2000])
        study.tell(trial, state=TrialState.FAIL)
        if interrupted:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt from err
        raise


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait_for_others(counts: Counts, waited: bool) -> bool:
    """Nothing to start while other workers run the last trials: wait, in case one dies or fails."""
    if not waited:
        log.info("%d trials running in other workers: waiting for them to finish", counts.running)
    time.sleep(IDLE_POLL_S)
    return True


def tell(study: optuna.Study, trial: optuna.Trial, result: TrialResult) -> None:
    """Record a trial's outcome in the study."""
    # skip_if_finished: another worker may have failed the trial meanwhile (its heartbeat was lost).
    if result.state == "complete" and result.value is not None and math.isfinite(result.value):
        study.tell(trial, result.value, skip_if_finished=True)
    elif result.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
    else:
        log.warning("trial %d failed: %s", trial.number, (result.reason or "").splitlines()[0] if result.reason else "")
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)


def finish_study(
    study: optuna.Study, tracker: MlflowTracker, parent: str, *, status: str = "FINISHED", metric: str = "val_loss"
) -> Counts:
    """Log the study's summary on its parent run and close it.

    A study that ends normally (``status`` FINISHED) also gets its recommendation and plots
    on the parent run; with too few trials, a note says so instead.
    """
    counts = count_trials(study)
    summary: dict[str, float] = {"n_complete": counts.complete, "n_pruned": counts.pruned, "n_failed": counts.failed}
    if counts.complete:
        summary["best_value"] = study.best_value
        summary["best_trial"] = study.best_trial.number
    tracker.log_study_summary(parent, summary)
    if status == "FINISHED":
        report_study(study, tracker, parent, metric=metric)
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
    finish_study(study, tracker, parent, metric=spec.objective.metric)
    return study
