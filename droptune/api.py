"""The use cases, once: what ``droptune tune`` and ``droptune.tune()`` both run.

``run_tune`` is prepare → search → confirm → summarise, inside the budget the study sets
(:mod:`droptune.tuning._budget`). The summary (recommendation, caveats, plots on the parent
run) is a study-end hook this layer registers on the lifecycle (:func:`report_at_end`): the
engine (:mod:`droptune.tuning`) analyses nothing itself. The command line adds only its argument parsing, its
progress bar and its printed summary; the Python API only its result object. A test runs
both on one tiny study and compares the trials, the confirmation and the export.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from droptune.config import StudySpec
    from droptune.tuning import StudyLifecycle

ProgressFn = Callable[["optuna.Study"], None]
SearchFn = Callable[["StudySpec", "StudyLifecycle", "ProgressFn | None"], None]


def run_tune(
    spec: StudySpec,
    *,
    progress: ProgressFn | None = None,
    prepared: StudyLifecycle | None = None,
    search: SearchFn | None = None,
    confirm: bool = True,
) -> optuna.Study:
    """Prepare (unless ``prepared``), search and confirm ``spec``'s study; the same call resumes.

    Args:
        spec: The study.
        progress: Called with the search study after each trial.
        prepared: What :func:`droptune.tuning.prepare_study` returned, if called already.
        search: Runs the search part (default: in this process); ``droptune tune --workers K``
            passes one that starts worker processes. Called with the search's spec (its share
            of ``n_trials`` and ``timeout``), the lifecycle and ``progress``.
        confirm: Retrain the leaders with fresh seeds inside the budget (see
            :mod:`droptune.tuning._budget`); False gives the whole budget to the search.

    Returns:
        The search study (its confirmed finalists, if any, in its user attributes).
    """
    from droptune.tuning import prepare_study
    from droptune.tuning._budget import confirm_in_budget, split_budget

    started = time.monotonic()
    budget = split_budget(spec, confirm=confirm)
    lifecycle = prepared or prepare_study(budget.search)
    if report_at_end not in lifecycle.on_end:
        lifecycle.on_end.append(report_at_end)
    (search or _in_process)(budget.search, lifecycle, progress)
    confirm_in_budget(spec, lifecycle.study, budget, started)
    return lifecycle.study


def _in_process(spec: StudySpec, lifecycle: StudyLifecycle, progress: ProgressFn | None) -> None:
    lifecycle.spec = spec
    lifecycle.tune(progress=progress)


def report_at_end(lifecycle: StudyLifecycle) -> None:
    """The study-end hook: the recommendation, its caveats and plots on the study's parent run."""
    from droptune.report import report_study

    report_study(lifecycle.study, lifecycle.tracker, lifecycle.parent_run_id, metric=lifecycle.spec.objective.metric)
