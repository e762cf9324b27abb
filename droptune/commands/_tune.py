"""``droptune tune``: run a study from its file, with a live progress bar and a summary."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import TYPE_CHECKING

import optuna

from droptune.commands._base import command, err, out
from droptune.commands._progress import trial_progress
from droptune.config import StudySpec, load_config
from droptune.exceptions import ConfigError
from droptune.recommend import best_trial
from droptune.tracking import Tracker
from droptune.tuning import count_trials, prepare_study

if TYPE_CHECKING:
    from droptune.tuning import StudyLifecycle


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The study file and the flags that override it (shared by ``tune`` and ``worker``)."""
    parser.add_argument("study_file", help="YAML study file")
    parser.add_argument(
        "--n-trials", type=int, metavar="N",
        help="the study's total: run until it holds N finished (complete or pruned) trials, those of earlier "
        "runs included, so a resumed study runs only the difference",
    )
    parser.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    parser.add_argument("--storage", help="Optuna storage URL (default: the file's, sqlite:///studies/droptune.db)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlruns/mlflow.db)")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial at most")
    parser.add_argument("--accelerator", help="Lightning accelerator: auto, cpu, gpu, cuda...")
    parser.add_argument(
        "--pack",
        type=_pack,
        help="train this many trials at once as one vectorised population; auto: as many as the GPU's memory holds",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=int,
        metavar="SECONDS",
        help="running trials beat this often; a trial silent for 4 beats is failed and retried (default 60, 0: off)",
    )


def _pack(text: str) -> int | str:
    """``--pack``: an integer, or ``auto`` (the range is checked with the study file's values)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1 or auto; got {text!r}") from None


def _positive(text: str) -> int:
    """``--more``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}")
    return value


def add_more(lifecycle: StudyLifecycle, args: argparse.Namespace) -> StudySpec:
    """``--more N``: make the prepared study's ``n_trials`` its finished trials plus N.

    The launched workers (``--workers``) get the same total through ``args.n_trials``.
    """
    total = count_trials(lifecycle.study).finished + args.more
    spec = lifecycle.spec
    lifecycle.spec = dataclasses.replace(spec, search=dataclasses.replace(spec.search, n_trials=total))
    args.n_trials = total
    return lifecycle.spec


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
        help="skip the confirmation that follows a study of 40+ complete trials (its top 3 retrained with 3 fresh seeds)",
    )


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    """Load the study file with the command line's overrides."""
    keys = (
        "n_trials", "timeout", "storage", "tracking_uri", "max_epochs", "accelerator", "pack",
        "workers", "workers_per_gpu", "heartbeat_interval",
    )
    return load_config(args.study_file, {k: getattr(args, k, None) for k in keys})


def print_summary(spec: StudySpec, study: optuna.Study, tracker: Tracker) -> None:
    """Counts, the best value and where to look in MLflow (the rates follow: :func:`print_recommendation`)."""
    counts = count_trials(study)
    out.print(
        f"\nstudy {spec.name}: {counts.complete} complete, {counts.pruned} pruned, "
        f"{counts.failed} failed (storage {spec.storage})",
        markup=False,  # a study name may hold "[...]"
        highlight=False,
    )
    if not counts.complete:
        out.print("no trial completed yet: nothing to report.")
        return
    best = best_trial(study)  # the trial `droptune export` writes (a confirmed study: the best mean)
    out.print(f"best {spec.objective.metric}: {best.value:.5g} (trial {best.number})")
    url = tracker.runs_url()
    if url is not None:
        # The command on a line of its own, so that it can be copied as it is.
        study_arg = f"{shlex.quote(spec.source)} " if spec.source else ""
        out.print(f"MLflow: experiment {spec.name} in {spec.tracking_uri}; to look at it, run", markup=False, highlight=False)
        out.print(f"  droptune ui {study_arg}--tracking-uri {shlex.quote(spec.tracking_uri)}", markup=False, highlight=False)
        # Not the URL itself: `droptune ui` prints it once the server answers, with the study's
        # saved view (sorted by the objective, droptune's columns), on the port it really got.
        out.print("and open the URL it prints (the study's runs, best first)", markup=False, highlight=False)


@command("tune", add_tune_arguments, help="run (or resume) a study described by a YAML file")
def tune_command(args: argparse.Namespace) -> int:
    if getattr(args, "more", None) is not None and args.n_trials is not None:
        raise ConfigError("--n-trials N is the study's total, --more N adds N to what it holds: give one of them.")
    spec = spec_from_args(args)
    lifecycle = prepare_study(spec)  # pre-flight first; stores created under a lock
    study = lifecycle.study
    if getattr(args, "more", None) is not None:
        spec = add_more(lifecycle, args)
    with trial_progress(spec.name, spec.search.n_trials, study, console=err, metric=spec.objective.metric) as update:
        if spec.search.workers > 1:
            from droptune.commands._worker import worker_args
            from droptune.tuning._workers import tune_parallel

            tune_parallel(spec, worker_args(args), progress=update, prepared=lifecycle)
        else:
            lifecycle.tune(progress=update)
    if not getattr(args, "no_confirm", False):  # export and recommend then keep the best mean over fresh seeds
        from droptune.tuning._confirm import confirm_by_default

        confirm_by_default(spec, study)
    print_summary(spec, study, lifecycle.tracker)
    from droptune.commands._recommend import print_recommendation

    print_recommendation(study, study_ref=shlex.quote(spec.source) if spec.source else shlex.quote(spec.name))
    return 0 if count_trials(study).complete else 1
