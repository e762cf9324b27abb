"""A study's life: create or resume it, run its workers, close it.

:class:`StudyLifecycle` is the one object that creates the stores (Optuna study, MLflow
experiment), the parent run and the enqueued prior trial, and the only one that closes the
parent run: ``droptune tune`` holds it; workers (``droptune worker``, in this or other
processes or machines) only run trials. The launching process prepares everything shared
before any worker starts, because fresh SQLite databases race in their schema migrations.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import optuna
from optuna.trial import FrozenTrial

from droptune.config import StudySpec
from droptune.exceptions import StudyError
from droptune.inspect import inspect_model
from droptune.preflight import preflight
from droptune.record import (
    BASELINE_ATTR,
    MODEL_SIZE_ATTR,
    N_CLASSES_ATTR,
    PARENT_RUN_ATTR,
    PRIOR_ATTR,
    SORT_KEY,
    UNTUNED_ATTR,
    parent_sort_key,
)
from droptune.sites import DropoutSite
from droptune.space import SearchSpace
from droptune.stores._create import create_stores_locked
from droptune.stores._storage import enable_wal, make_storage
from droptune.tracking import Tracker, tracker_for
from droptune.tracking._health import hurry
from droptune.tuning._build import build, example_input, model_sites
from droptune.tuning._factories import PRUNERS, sampler_for
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning._scheduler import ENDED, Counts, ProgressFn, count_trials, schedule
from droptune.tuning.executors import executor_kind, make_executor

SITES_TEXT, SITES_JSON = "sites.txt", "sites.json"  # the parent run's site table (droptune inspect)

log = logging.getLogger(__name__)

MIN_TRIALS_FOR_BASELINE = 8


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
            study_name=spec.name, storage=storage, direction=spec.objective.direction, pruner=pruner, load_if_exists=True
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
    study.sampler = sampler_for(spec, spec.seed + 7919 * worker + n_existing)
    return study


StudyEndHook = Callable[["StudyLifecycle"], None]


@dataclass
class StudyLifecycle:
    """A prepared study: its Optuna study, tracker and parent run. Make one with :func:`prepare_study`.

    ``on_end`` holds the study-end hooks: each is called with the lifecycle when the study ends
    normally, before its parent run closes. The engine analyses nothing itself; the use-case
    layer (:func:`droptune.api.run_tune`) adds the report there.
    """

    spec: StudySpec
    study: optuna.Study
    tracker: Tracker
    parent_run_id: str
    on_end: list[StudyEndHook] = field(default_factory=list)

    def finish(self, *, status: str = "FINISHED") -> Counts:
        """Log the study's summary on its parent run and close it (FINISHED or KILLED).

        A study that ends normally runs its :attr:`on_end` hooks first (the report: the
        recommendation and plots on the parent run).
        """
        counts = count_trials(self.study)
        summary: dict[str, float] = {"n_complete": counts.complete, "n_pruned": counts.pruned, "n_failed": counts.failed}
        if counts.complete:
            summary["best_value"] = self.study.best_value
            summary["best_trial"] = self.study.best_trial.number
            # The best value under the objective's own column, and the key that lists the
            # parent run first in droptune's saved MLflow view (see droptune.record.SORT_KEY).
            objective, trials = self.spec.objective, self.study.get_trials(deepcopy=False)
            reached = [v for t in trials for v in (t.value, *t.intermediate_values.values()) if v is not None]
            summary[f"best_{objective.metric}"] = self.study.best_value
            summary[SORT_KEY] = parent_sort_key(reached, objective.direction)
        self.tracker.log_study_summary(self.parent_run_id, summary)
        if status == "FINISHED":
            for hook in self.on_end:
                hook(self)
        self.tracker.end_study(self.parent_run_id, status=status)
        return counts

    def tune(self, *, progress: ProgressFn | None = None) -> optuna.Study:
        """Run the study's trials in this process, then close it.

        Interrupted or failed, the parent run ends KILLED and the trials already finished
        stay; running the same study again resumes.
        """
        deadline = time.monotonic() + self.spec.search.timeout if self.spec.search.timeout else None
        try:
            run_worker(self.spec, study=self.study, tracker=self.tracker, progress=progress, deadline=deadline)
        except BaseException:
            hurry(self.tracker)  # stopping: never wait long on a tracking server that hangs
            self.finish(status="KILLED")
            raise
        self.finish()
        return self.study


def prepare_study(spec: StudySpec, *, tracker: Tracker | None = None) -> StudyLifecycle:
    """Check the study, then create (or reopen) the study, experiment, parent run and prior trial.

    The pre-flight (:func:`droptune.preflight.preflight`: store URLs, one training and one
    validation batch) runs before anything is created, and the stores are created under
    :func:`~droptune.stores._create.create_stores_locked`, so that simultaneous first starts do
    not race and a failed start leaves no half-made store.

    Args:
        spec: The study.
        tracker: Where runs go (default: :func:`droptune.tracking.tracker_for`).

    Raises:
        ConfigError: If the model has no dropout site to tune, a URL is malformed, a metric is
            never logged... (nothing is created then).
        StudyError: If the stored study was created with another direction, or a store cannot
            be reached or written.
    """
    executor_kind(spec)  # an unknown search.executor is refused before anything is written
    preflight(spec)
    with create_stores_locked(spec):
        return _prepare(spec, tracker)


def _prepare(spec: StudySpec, tracker: Tracker | None) -> StudyLifecycle:
    model, data = build(spec)
    space = space_of(spec)
    found = model_sites(spec, model, data)
    sites = space.select(found)
    for note in space.notes(sites):
        log.warning("study %s: %s", spec.name, note)
    inactive = {s.name: s.rate for s in found if not s.live}
    if inactive:  # not tuned, and exported at the rate the model was built with: say so, once per start
        log.warning(
            "study %s: %s never ran on the example input (a dropout that runs only on some batches or code "
            "paths): not tuned; exports keep the model's own rate for it (`droptune inspect` shows why)",
            spec.name, ", ".join(f"{name} ({rate:g})" for name, rate in inactive.items()),
        )
    study = load_study(spec)
    enable_wal(spec.storage)
    if study.direction.name.lower() != spec.objective.direction:
        raise StudyError(
            f"study {spec.name!r} in {spec.storage} was created to {study.direction.name.lower()}; "
            f"the study file says {spec.objective.direction}. Use another name."
        )
    tracker = tracker or tracker_for(spec)
    enable_wal(spec.tracking_uri)
    parent = tracker.study_run(study.user_attrs.get(PARENT_RUN_ATTR))
    trials = study.get_trials(deepcopy=False)
    ended = {t.number: ENDED[t.state] for t in trials if t.state in ENDED}
    if ended:  # a resume: runs a killed worker left open for trials the study has finished
        closed = tracker.close_finished_runs(parent, ended)
        if closed:
            log.info("closed %d MLflow runs left open by a stopped worker", closed)
    if not trials:
        study.enqueue_trial(space.prior_params(sites), user_attrs={PRIOR_ATTR: True})
        # What the recommendation is evidence for (droptune.recommend._transfer).
        study.set_user_attr(MODEL_SIZE_ATTR, {"n_params": sum(p.numel() for p in model.parameters())})
        if inactive:  # export names them: their rate is the model's own, not a tuned one
            study.set_user_attr(UNTUNED_ATTR, sorted(inactive))
        n_classes = getattr(data, "num_classes", None)
        if isinstance(n_classes, int):  # the recommendation's chance check
            study.set_user_attr(N_CLASSES_ATTR, n_classes)
        if spec.source:
            tracker.log_artifact(parent, spec.source)
        _log_site_table(spec, model, data, space, tracker, parent)
    _enqueue_baseline(spec, study, space, sites, trials)
    # optuna-dashboard and Optuna's plots name the objective after it.
    if study.metric_names != [spec.objective.metric]:
        with warnings.catch_warnings():  # "experimental" in Optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([spec.objective.metric])
    # Last: `droptune worker` takes this attribute as the sign that the study is ready to join.
    study.set_user_attr(PARENT_RUN_ATTR, parent)
    return StudyLifecycle(spec=spec, study=study, tracker=tracker, parent_run_id=parent)


def _enqueue_baseline(
    spec: StudySpec, study: optuna.Study, space: SearchSpace, sites: list[DropoutSite], trials: list[FrozenTrial]
) -> None:
    """Queue the no-dropout trial once, in a study big enough to afford it (also when resumed bigger).

    "No dropout at all" is measured in every study of :data:`MIN_TRIALS_FOR_BASELINE` trials or
    more, so that a study never hands over something worse than it without its numbers showing it
    (issue 20). A smaller study (a smoke test) keeps its few trials for the prior and the search.
    """
    if spec.search.n_trials < MIN_TRIALS_FOR_BASELINE or any(BASELINE_ATTR in t.user_attrs for t in trials):
        return
    baseline = space.baseline_params(sites)
    if baseline != space.prior_params(sites):
        study.enqueue_trial(baseline, user_attrs={BASELINE_ATTR: "no_dropout"})


def _log_site_table(
    spec: StudySpec,
    model: pl.LightningModule,
    data: pl.LightningDataModule,
    space: SearchSpace,
    tracker: Tracker,
    parent: str,
) -> None:
    """Log what ``droptune inspect`` shows (sites, types and why, liveness, advice) on the parent run."""
    report = inspect_model(model, example_input(model, data), layer_types=spec.search.layer_types, space=space)
    with tempfile.TemporaryDirectory(prefix="droptune-sites-") as tmp:
        for name, text in ((SITES_TEXT, report.to_text()), (SITES_JSON, json.dumps(report.as_dict(), indent=2))):
            path = Path(tmp) / name
            path.write_text(text + "\n")
            tracker.log_artifact(parent, path)


def run_worker(
    spec: StudySpec,
    *,
    study: optuna.Study | None = None,
    tracker: Tracker | None = None,
    worker: int = 0,
    progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> Counts:
    """Run trials of a prepared study until it holds ``n_trials`` finished trials.

    Any number of workers, in this and other processes or machines, may run one study. A
    worker never closes the parent run: the :class:`StudyLifecycle` that prepared it does.

    Args:
        spec: The study.
        study: The loaded study (loaded from ``spec`` when None).
        tracker: Where child runs go (default: :func:`droptune.tracking.tracker_for`).
        worker: Index of this worker, to seed its sampler apart from the others.
        progress: Called with the study after each trial.
        deadline: ``time.monotonic()`` after which no new trial starts.

    Returns:
        The study's counts when this worker stopped.

    Raises:
        StudyError: If the study was not prepared by :func:`prepare_study`.
    """
    study = study or load_study(spec, worker=worker)
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None:
        raise StudyError(f"study {spec.name!r} was not prepared: run `droptune tune` first.")
    tracker = tracker or tracker_for(spec)
    recorder = TrialRecorder(study=study, tracker=tracker, parent_run_id=parent, objective=spec.objective)
    space = space_of(spec)
    try:
        executor = make_executor(spec, space, recorder)
    except BaseException:
        recorder.shutdown()
        raise
    return schedule(spec, study, recorder, executor, progress=progress, deadline=deadline)


def tune(spec: StudySpec, *, progress: ProgressFn | None = None, prepared: StudyLifecycle | None = None) -> optuna.Study:
    """Prepare (unless ``prepared`` is given), run and close a study in this process.

    This is ``droptune tune`` without the command line; the same call resumes.
    """
    return (prepared or prepare_study(spec)).tune(progress=progress)
