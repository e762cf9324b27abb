"""Seed-robust selection inside the study's budget: search, then confirm, in ``n_trials`` / ``timeout``.

A trial's value rewards its lucky seed: exported trials looked about 0.04 better in validation
loss than their retrains (issue 20). Confirmation (:mod:`droptune.tuning._confirm`) replaces
the single values of the leaders by means over fresh seeds, but it used to run *after* a
study's timeout and only from the command line. Here it is part of the budget the user set:

- ``n_trials``: a study of :data:`MIN_TRIALS_TO_CONFIRM` trials or more searches
  ``n_trials - (TOP + BASELINES) * SEEDS`` trials and spends the rest on retraining its top
  :data:`TOP` configurations and its :data:`BASELINES` reference trials (no dropout, the
  textbook prior) :data:`SEEDS` times each (a 40-trial study: 30 searched, up to 10 retrains;
  fewer when a baseline is among the leaders);
- ``timeout``: the search stops starting trials at ``1 - CONFIRM_SHARE`` of it; the
  confirmation retrains as many finalists (up to :data:`TOP`, plus the baselines) as the time
  left fits, at the mean duration of a complete trial, and starts none after the deadline.

:func:`droptune.tuning.run_tune` (used by ``droptune tune`` and ``droptune.tune()`` alike)
applies both. The split is a pure function of the study's settings, so a resumed study
resumes the same split.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.config import StudySpec
from droptune.record import confirmed_finalists
from droptune.tuning._confirm import Finalist, baseline_kind, confirm

log = logging.getLogger(__name__)

TOP = 3
BASELINES = 2  # the enqueued no-dropout and prior trials (droptune.tuning._lifecycle)
SEEDS = 2
MIN_TRIALS_TO_CONFIRM = 30  # the confirmation then takes at most a third of the trials
CONFIRM_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Budget:
    """How a study's budget is split between the search and the confirmation.

    Attributes:
        search: The spec the search runs with (``n_trials`` and ``timeout`` reduced).
        retrains: Retrains of finalists planned within ``n_trials`` (0: no confirmation).
        timeout: The whole study's timeout in seconds (None: none).
    """

    search: StudySpec
    retrains: int
    timeout: float | None


def split_budget(spec: StudySpec, *, confirm: bool = True) -> Budget:
    """The search's share of ``spec``'s budget and the retrains kept for the confirmation.

    Example:
        >>> from droptune.config import ClassSpec, SearchSpec
        >>> spec = StudySpec(name="s", model=ClassSpec("m.M"), data=ClassSpec("m.D"), search=SearchSpec(n_trials=40))
        >>> budget = split_budget(spec)
        >>> budget.search.search.n_trials, budget.retrains
        (30, 10)
        >>> split_budget(spec, confirm=False).search.search.n_trials
        40
    """
    n, timeout = spec.search.n_trials, spec.search.timeout
    if not confirm or n < MIN_TRIALS_TO_CONFIRM:
        return Budget(search=spec, retrains=0, timeout=timeout)
    search = dataclasses.replace(
        spec.search, n_trials=n - (TOP + BASELINES) * SEEDS, timeout=None if timeout is None else timeout * (1 - CONFIRM_SHARE)
    )
    return Budget(search=dataclasses.replace(spec, search=search), retrains=(TOP + BASELINES) * SEEDS, timeout=timeout)


def confirm_in_budget(spec: StudySpec, study: optuna.Study, budget: Budget, started: float) -> list[Finalist]:
    """Confirm the leaders of ``study`` with what is left of ``budget`` (``started``: monotonic start).

    Nothing runs when no confirmation was planned, when the current top :data:`TOP` are
    confirmed already (a resumed study), or when not even one finalist's retrains fit in the
    time left.

    Returns:
        The finalists, best confirmed mean first, or an empty list.
    """
    from droptune.record import rank_trials  # ranking rules (feasible first) live there

    if not budget.retrains:
        return []
    ranked = rank_trials(study)
    confirmed = {f["trial"] for f in confirmed_finalists(study.user_attrs)}
    if not ranked or {t.number for t in ranked[:TOP]} <= confirmed:
        return []
    top, deadline = min(TOP, len(ranked)), None
    if budget.timeout is not None:
        deadline = started + budget.timeout
        top = _fitting(study, ranked, deadline - time.monotonic(), spec.search.pack, top)
        if not top:
            log.info("no time left in the study's timeout to confirm its leaders: the best single trial is kept")
            return []
    return confirm(spec, top=top, seeds=SEEDS, deadline=deadline)


def _fitting(study: optuna.Study, ranked: list[FrozenTrial], left_s: float, pack: int | str, top: int) -> int:
    """How many leaders, with the baselines ranked below them, can each be retrained once in
    ``left_s`` seconds at the mean complete trial's duration (0: not even the best one).

    Once each: the confirmation runs its retrains seed-major (every configuration's first seed,
    then the second) and starts none after the deadline, and its summary counts only the seeds
    every configuration completed, so a round cut short still compares them on the same seeds.
    """
    durations = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.datetime_complete and t.datetime_start
    ]
    if not durations:
        return 0
    per_trial = statistics.fmean(durations)
    width = pack if isinstance(pack, int) else 1  # a population trains up to `pack` retrains at once

    def configs(k: int) -> int:
        return k + sum(1 for t in ranked[k:] if baseline_kind(t))

    fits = [k for k in range(1, top + 1) if per_trial * math.ceil(configs(k) / width) <= left_s]
    return max(fits, default=0)
