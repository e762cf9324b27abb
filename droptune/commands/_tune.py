"""``droptune tune``: run a study from its file, with a live progress bar and a summary.

This module is imported by ``droptune --help``: it imports nothing heavy (torch, Lightning,
Optuna, MLflow) at the top; the handler does, once the study file has passed its schema.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import TYPE_CHECKING

from droptune.commands._base import command, err, out, quiet_libraries, say
from droptune.commands._study_args import add_study_arguments, spec_from_args
from droptune.config import StudySpec
from droptune.exceptions import ConfigError

if TYPE_CHECKING:
    import optuna

    from droptune.api import ProgressFn, SearchFn
    from droptune.tracking import Tracker
    from droptune.tuning import StudyLifecycle


def _positive(text: str) -> int:
    """``--more``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def add_more(spec: StudySpec, lifecycle: StudyLifecycle, args: argparse.Namespace) -> StudySpec:
    """``--more N``: the study's ``n_trials`` becomes its finished trials plus N (retrains included).

    The launched workers (``--workers``) get their share of that total (see :func:`_parallel`).
    """
    from droptune.tuning import count_trials

    total = count_trials(lifecycle.study).finished + args.more
    args.n_trials = total
    return dataclasses.replace(spec, search=dataclasses.replace(spec.search, n_trials=total))


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """``droptune tune``: the study arguments and the worker processes to run them."""
    add_study_arguments(parser)
    parser.add_argument("--workers", type=int, help="run the study in this many worker processes (default 1)")
    parser.add_argument(
        "--workers-per-gpu", type=int, help="at most this many workers share one GPU (default: as many as needed)"
    )
    parser.add_argument(
        "--more", type=_positive, metavar="N",
        help="run N trials more than the study already holds finished (instead of --n-trials, a total)",
    )
    parser.add_argument(
        "--no-confirm", action="store_true",
        help="give the whole budget to the search: no retraining of the top 3 with 2 fresh seeds each "
        "(by default part of n_trials/timeout in studies of 20+ trials)",
    )


def print_summary(spec: StudySpec, study: optuna.Study, tracker: Tracker) -> None:
    """Counts, the best value and where to look in MLflow (the rates follow: :func:`print_recommendation`)."""
    from droptune.recommend._confirmed import confirmed_note
    from droptune.record import best_trial
    from droptune.tuning import count_trials

    counts = count_trials(study)
    if out.is_terminal:  # a blank line below the progress bar; none in a pipe or a file
        out.print()
    say(out, f"study {spec.name}: {counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed "
        f"(storage {spec.storage})")
    from droptune.tracking._health import tracking_note

    lost = tracking_note(tracker)  # tracking_failure: continue, and the server stopped answering
    if lost is not None:
        say(out, lost)
    if not counts.complete:
        say(out, "no trial completed yet: nothing to report.")
        return
    best = best_trial(study)  # the trial `droptune export` writes (a confirmed study: the best mean)
    say(out, f"best {spec.objective.metric}: {best.value:.5g} (trial {best.number})")
    note = confirmed_note(study)
    if note:
        say(out, note)
    url = tracker.runs_url()
    if url is not None:
        # The command on a line of its own, so that it can be copied as it is.
        study_arg = f"{shlex.quote(spec.source)} " if spec.source else ""
        say(out, f"MLflow: experiment {spec.name} in {spec.tracking_uri}; to look at it, run")
        say(out, f"  droptune ui {study_arg}--tracking-uri {shlex.quote(spec.tracking_uri)}")
        # Not the URL itself: `droptune ui` prints it once the server answers, with the study's
        # saved view (sorted by the objective, droptune's columns), on the port it really got.
        say(out, "and open the URL it prints (the study's runs, best first)")


def _parallel(args: argparse.Namespace) -> SearchFn:
    """The search in ``--workers`` processes, each told the search's share of the budget."""
    from droptune.commands._worker import worker_args
    from droptune.tuning._workers import tune_parallel

    def search(spec: StudySpec, lifecycle: StudyLifecycle, progress: ProgressFn | None) -> None:
        share = argparse.Namespace(**{**vars(args), "n_trials": spec.search.n_trials, "timeout": spec.search.timeout})
        tune_parallel(spec, worker_args(share), progress=progress, prepared=lifecycle)

    return search


@command("tune", add_tune_arguments, help="run (or resume) a study described by a YAML file")
def tune_command(args: argparse.Namespace) -> int:
    if getattr(args, "more", None) is not None and args.n_trials is not None:
        raise ConfigError("--n-trials N is the study's total, --more N adds N to what it holds: give one of them.")
    spec = spec_from_args(args)  # a study file's mistake is refused before the stack is imported
    from droptune.api import run_tune
    from droptune.commands._live import EpochTap
    from droptune.commands._progress import trial_progress
    from droptune.tuning import count_trials, prepare_study
    from droptune.tuning._budget import split_budget

    quiet_libraries(getattr(args, "debug", False))
    say(err, f"droptune: preparing study {spec.name}: one pre-flight batch, the Optuna storage, the MLflow store …")
    confirming = not getattr(args, "no_confirm", False)
    lifecycle = prepare_study(split_budget(spec, confirm=confirming).search)  # pre-flight first; stores under a lock
    if getattr(args, "more", None) is not None:
        spec = add_more(spec, lifecycle, args)
    search_spec = split_budget(spec, confirm=confirming).search  # run_tune gives the lifecycle this spec
    # The trials log their epochs to this tracker: the tap shows them under the bar as well.
    # With --workers the trials run in other processes: their epochs are read from the study.
    parallel = spec.search.workers > 1
    tap = EpochTap(lifecycle.tracker)
    lifecycle = dataclasses.replace(lifecycle, tracker=tap)
    study = lifecycle.study
    with trial_progress(
        spec.name, search_spec.search.n_trials, study, console=err, metric=spec.objective.metric,
        max_epochs=spec.trainer.max_epochs, tap=None if parallel else tap, poll=parallel,
    ) as update:
        # Search, then confirm inside the budget: what droptune.tune() runs too (droptune.api).
        run_tune(spec, progress=update, prepared=lifecycle, confirm=confirming,
                 search=_parallel(args) if parallel else None)
    print_summary(spec, study, lifecycle.tracker)
    from droptune.commands._recommend import print_recommendation

    print_recommendation(study, study_ref=shlex.quote(spec.source) if spec.source else shlex.quote(spec.name))
    return 0 if count_trials(study).complete else 1
