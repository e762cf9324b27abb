"""Confirmed finalists: retrain a search's top configurations with fresh seeds.

The best validation loss of one trial rewards a lucky seed. :func:`confirm` retrains the
``top`` best configurations of a finished search ``seeds`` times each and ranks them by
their mean objective, which is what a user keeps.

A confirmation is a derived Optuna study, ``<study>.confirm`` in the same storage, run by
the same scheduler and executors as any study (packed where the search was packed), with
pruning off. Its plan (the configurations and the number of seeds) is a user attribute of
that study, and :class:`PlanSampler` hands each new trial the next (configuration, seed)
pair not yet complete or running. So it resumes like a study, and a trial that fails or
is interrupted is redone with the same configuration: enqueuing the plan as waiting
trials would not cover that, since the scheduler replaces failed trials by fresh asks.

Retrain i of every configuration trains with seed ``confirm seed + i``
(:func:`droptune.record.trial_seed`), where the confirm seed is :data:`SEED_OFFSET` away
from the study's: distinct from every seed the search used, and shared between finalists, so
that their means differ by their configurations, not by their seeds (paired retrains). The summary (mean ± sd of the objective and of the gap per configuration) is
written to the search study (:data:`droptune.record.CONFIRMED_ATTR`), where ``export``
and ``recommend`` read it through :func:`droptune.record.confirmed_finalists`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.config import SEED_MAX, StudySpec
from droptune.exceptions import ConfigError, StudyError
from droptune.record import (
    BASELINE_ATTR,
    CONFIRM_INDEX_ATTR,
    CONFIRM_ORIGIN_ATTR,
    CONFIRMED_ATTR,
    GAP_ATTR,
    PARENT_RUN_ATTR,
    PRIOR_ATTR,
    site_rates,
)
from droptune.sites import LAYER_TYPES
from droptune.tracking import Tracker, tracker_for
from droptune.tuning._lifecycle import load_study, run_worker
from droptune.tuning._plan import PlanSampler
from droptune.tuning._scheduler import ProgressFn

log = logging.getLogger(__name__)

SUFFIX = ".confirm"
PLAN_ATTR = "confirm_plan"  # [{"trial": n, "rates": {site: rate}}, ...] in rank order
SEEDS_ATTR = "confirm_seeds"
# A study never holds a million trials, so seeds seed+0.. (search) and seed+SEED_OFFSET..
# (confirmation) never meet.
SEED_OFFSET = 1_000_003
DEFAULT_TOP = 3
DEFAULT_SEEDS = 5
# Rates are replayed as they were: the confirm study's variables span every legal rate.
_ANY_RATE = (0.0, 0.999)


@dataclasses.dataclass(frozen=True)
class Finalist:
    """One configuration of the search, retrained ``n`` times.

    Attributes:
        trial: Its trial number in the search study.
        n: Complete retrains.
        value_mean: Mean of their objective values.
        value_sd: Sample standard deviation of those values (0.0 with one retrain).
        gap_mean: Mean overfitting gap at their best epochs.
        gap_sd: Its sample standard deviation.
        search_value: The value of the search trial itself (one seed, the lucky one).
        baseline: ``"no_dropout"`` or ``"prior"`` for the study's enqueued reference trials
            (retrained beside the leaders whatever their rank), else None.
    """

    trial: int
    n: int
    value_mean: float
    value_sd: float
    gap_mean: float
    gap_sd: float
    search_value: float
    baseline: str | None = None


def confirm_seed(spec: StudySpec) -> int:
    """The seed of the confirmation's trial 0 (trial k trains with this + k)."""
    return spec.seed + SEED_OFFSET if spec.seed + 2 * SEED_OFFSET <= SEED_MAX else spec.seed - SEED_OFFSET


def confirm_spec(spec: StudySpec, n_trials: int) -> StudySpec:
    """The derived study: named ``<study>.confirm``, fresh seeds, no pruning, one variable per site."""
    search = dataclasses.replace(
        spec.search, granularity="site", pruner="none", n_trials=n_trials, timeout=None,
        ranges={t: _ANY_RATE for t in LAYER_TYPES},
    )
    return dataclasses.replace(spec, name=spec.name + SUFFIX, seed=confirm_seed(spec), search=search)


def _check(top: int, seeds: int) -> None:
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise ConfigError(f"--top must be an integer >= 1 (configurations to retrain); got {top!r}.")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 2:
        raise ConfigError(f"--seeds must be an integer >= 2 (a spread needs two retrains); got {seeds!r}.")


def _plan(search: optuna.Study, stored: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """The stored plan, plus the search's ``top`` best complete trials and its baselines not in it yet.

    The baselines (the enqueued no-dropout and textbook-prior trials, when complete) are retrained
    beside the leaders whatever their rank, with the same paired seeds: a lucky seed can put a
    searched configuration ahead of them in the search, and only their retrains show whether it
    stays ahead (issue 20: the study never hands over something worse than either without its
    numbers saying so). A search resumed after its confirmation may have found better trials:
    they join the plan.
    """
    from droptune.record import rank_trials  # ranking rules (feasible first) live there

    known = {e["trial"] for e in stored}
    ranked = rank_trials(search)
    wanted = ranked[:top] + [t for t in ranked[top:] if baseline_kind(t)]
    return list(stored) + [{"trial": t.number, "rates": site_rates(t)} for t in wanted if t.number not in known]


def baseline_kind(trial: FrozenTrial) -> str | None:
    """``"no_dropout"`` or ``"prior"`` for the study's enqueued reference trials, else None."""
    if BASELINE_ATTR in trial.user_attrs:
        return str(trial.user_attrs[BASELINE_ATTR])
    return "prior" if trial.user_attrs.get(PRIOR_ATTR) else None


def confirm(
    spec: StudySpec,
    *,
    top: int = DEFAULT_TOP,
    seeds: int = DEFAULT_SEEDS,
    tracker: Tracker | None = None,
    progress: ProgressFn | None = None,
    deadline: float | None = None,
) -> list[Finalist]:
    """Retrain the ``top`` best configurations of ``spec``'s study ``seeds`` times each.

    Runs (or resumes) the study ``<name>.confirm`` in the same storage, then writes the
    finalists to the search study (see :func:`droptune.record.confirmed_finalists`) and
    to its MLflow parent run (``confirmed_*`` metrics). Asking for more ``top`` or ``seeds``
    later extends the same confirmation.

    Args:
        spec: The search study (already run: ``droptune tune``).
        top: Configurations to retrain, best first (default 3).
        seeds: Retrains of each, with fresh seeds (default 5, at least 2).
        tracker: Where runs go (default: the study's MLflow store).
        progress: Called with the confirm study after each trial.
        deadline: ``time.monotonic()`` after which no retrain starts (the finalists are then
            summarised from the retrains done: seed-major order keeps their counts equal).

    Returns:
        The finalists, best confirmed mean first.

    Raises:
        ConfigError: If ``top`` < 1 or ``seeds`` < 2 (nothing is written then).
        StudyError: If the search study does not exist or has no complete trial.
    """
    cspec, study, search, tracker = start_confirmation(spec, top=top, seeds=seeds, tracker=tracker)
    parent = study.user_attrs[PARENT_RUN_ATTR]
    try:
        run_worker(cspec, study=study, tracker=tracker, progress=progress, deadline=deadline)
    except BaseException:
        tracker.end_study(parent, status="KILLED")
        raise
    finalists = summarise(study, search)
    numbers = dataclasses.asdict(finalists[0]).items() if finalists else ()
    summary = {f"confirmed_{k}": float(v) for k, v in numbers if isinstance(v, (int, float))}
    tracker.end_study(parent)
    record_finalists(search, finalists, study=study.study_name, seeds=seeds)
    search_parent = search.user_attrs.get(PARENT_RUN_ATTR)
    if summary and search_parent:  # the search's parent run shows what was kept
        tracker.log_study_summary(search_parent, summary)
    return finalists


def start_confirmation(
    spec: StudySpec, *, top: int = DEFAULT_TOP, seeds: int = DEFAULT_SEEDS, tracker: Tracker | None = None
) -> tuple[StudySpec, optuna.Study, optuna.Study, Tracker]:
    """Create (or extend) the confirmation of ``spec``'s study, its plan and its parent run; run nothing.

    Returns:
        The confirmation's spec and study, the search study, and the tracker.
    """
    _check(top, seeds)
    search = load_study(spec, create=False)
    from droptune.record import best_trial

    best_trial(search)  # a StudyError saying so when nothing is complete
    study = load_study(confirm_spec(spec, n_trials=0))
    plan = _plan(search, study.user_attrs.get(PLAN_ATTR, []), top)
    seeds = max(seeds, int(study.user_attrs.get(SEEDS_ATTR, 0)))
    study.set_user_attr(PLAN_ATTR, plan)
    study.set_user_attr(SEEDS_ATTR, seeds)
    cspec = _follow_plan(spec, study, plan, seeds)
    log.info(
        "confirming study %r: its top %d configurations retrained with %d fresh seeds each (study %r)",
        spec.name, len(plan), seeds, cspec.name,
    )
    tracker = tracker or tracker_for(cspec)
    study.set_user_attr(PARENT_RUN_ATTR, tracker.study_run(study.user_attrs.get(PARENT_RUN_ATTR)))
    return cspec, study, search, tracker


def open_confirmation(spec: StudySpec, *, worker: int) -> tuple[StudySpec, optuna.Study]:
    """The confirmation that ``droptune confirm`` started on ``spec``'s study, for another worker to join.

    A worker running it (:func:`droptune.tuning.run_worker`) takes the next planned
    (configuration, seed) pairs under the study lock, as the confirming process does, until
    every pair is done; ``droptune confirm`` then writes the finalists.

    Returns:
        The confirmation's spec (``n_trials``: every planned retrain) and study (plan sampler set).

    Raises:
        StudyError: If no confirmation of ``spec``'s study was started.
    """
    try:
        study: optuna.Study | None = load_study(confirm_spec(spec, n_trials=0), worker=worker, create=False)
    except StudyError:
        study = None
    attrs = study.user_attrs if study is not None else {}
    plan, seeds = attrs.get(PLAN_ATTR), int(attrs.get(SEEDS_ATTR, 0))
    if study is None or not plan or not seeds or PARENT_RUN_ATTR not in attrs:
        raise StudyError(
            f"no confirmation of study {spec.name!r} was started in {spec.storage}: run "
            f"`droptune confirm {spec.source or 'STUDY_FILE'}` first, then join it with `droptune worker --confirm`."
        )
    return _follow_plan(spec, study, plan, seeds), study


def _follow_plan(spec: StudySpec, study: optuna.Study, plan: list[dict[str, Any]], seeds: int) -> StudySpec:
    """The confirmation's spec for ``plan`` × ``seeds`` retrains; ``study`` gets the sampler that hands them out."""
    cspec = confirm_spec(spec, n_trials=len(plan) * seeds)
    study.sampler = PlanSampler(plan, seeds, cspec.seed)
    return cspec


def summarise(confirmation: optuna.Study, search: optuna.Study) -> list[Finalist]:
    """Mean ± sd per configuration of a confirmation's complete trials, best mean first.

    Only the retrains whose index every configuration completed are counted (paired): retrain i
    trains every configuration with the same seed, so a confirmation cut short by its deadline
    mid-round compares its finalists on the same seeds rather than on different numbers of them.
    """
    groups: dict[int, dict[int, FrozenTrial]] = {}
    for t in confirmation.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.value is not None and math.isfinite(t.value) and CONFIRM_ORIGIN_ATTR in t.user_attrs:
            index = int(t.user_attrs.get(CONFIRM_INDEX_ATTR, t.number))
            groups.setdefault(int(t.user_attrs[CONFIRM_ORIGIN_ATTR]), {})[index] = t
    shared = set.intersection(*(set(g) for g in groups.values())) if groups else set()
    trials_by_number = {t.number: t for t in search.get_trials(deepcopy=False)}
    finalists = []
    for origin, by_index in groups.items():
        trials = [by_index[i] for i in sorted(shared)]
        if not trials:
            continue
        v = [float(t.value) for t in trials]  # type: ignore[arg-type]
        g = [float(t.user_attrs[GAP_ATTR]) for t in trials if GAP_ATTR in t.user_attrs]
        finalists.append(
            Finalist(
                trial=origin, n=len(v), value_mean=statistics.fmean(v), value_sd=_sd(v),
                gap_mean=statistics.fmean(g) if g else math.nan, gap_sd=_sd(g),
                search_value=_value(trials_by_number.get(origin)),
                baseline=baseline_kind(trials_by_number[origin]) if origin in trials_by_number else None,
            )
        )
    sign = 1.0 if search.direction == optuna.study.StudyDirection.MINIMIZE else -1.0
    return sorted(finalists, key=lambda f: (sign * f.value_mean, f.trial))


def record_finalists(search: optuna.Study, finalists: Sequence[Finalist], *, study: str, seeds: int) -> None:
    """Write the finalists to the search study, where :func:`droptune.record.confirmed_finalists` reads them."""
    search.set_user_attr(
        CONFIRMED_ATTR,
        {"study": study, "seeds": seeds, "finalists": [_plain(dataclasses.asdict(f)) for f in finalists]},
    )


def _value(trial: FrozenTrial | None) -> float:
    return float(trial.value) if trial is not None and trial.value is not None else math.nan


def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else (0.0 if values else math.nan)


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    # Optuna stores user attributes as JSON: NaN becomes None rather than invalid JSON.
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
