"""The study file and the flags that override it: what ``droptune tune`` and ``droptune worker`` share.

Its own module so that the two commands depend on it, not on each other.
"""

from __future__ import annotations

import argparse

from droptune.commands._base import err, say
from droptune.config import StudySpec, load_config


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


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    """Load the study file with the command line's overrides.

    Once its schema has passed (in a fraction of a second), and before the model, data and
    Lightning are imported (seconds), the first line goes to stderr, unless ``--quiet``.
    """
    keys = (
        "n_trials", "timeout", "storage", "tracking_uri", "max_epochs", "accelerator", "pack",
        "workers", "workers_per_gpu", "heartbeat_interval",
    )
    overrides = {k: getattr(args, k, None) for k in keys}
    announce = None if getattr(args, "quiet", False) else _announce
    return load_config(args.study_file, overrides, before_imports=announce)


def _announce(spec: StudySpec) -> None:
    say(err, f"droptune: loading study {spec.name} ({spec.source}) …")