"""``droptune confirm``: retrain a study's best configurations with fresh seeds, rank them by mean."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.table import Table

from droptune.commands._base import command, err, out, quiet_libraries, say
from droptune.config import load_config

if TYPE_CHECKING:
    import optuna

    from droptune.tuning._confirm import Finalist

# droptune.tuning._confirm's defaults, repeated so that `--help` imports no Optuna nor torch
# (tests/commands check that they agree).
DEFAULT_TOP = 3
DEFAULT_SEEDS = 5


def add_confirm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_file", help="YAML study file of a study already run with `droptune tune`")
    parser.add_argument(
        "--top", type=int, default=DEFAULT_TOP, help=f"configurations to retrain, best first (default {DEFAULT_TOP})"
    )
    parser.add_argument(
        "--seeds", type=int, default=DEFAULT_SEEDS, help=f"retrains of each, with fresh seeds (default {DEFAULT_SEEDS})"
    )
    parser.add_argument("--storage", help="Optuna storage URL (default: the file's, sqlite:///studies/droptune.db)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///mlruns/mlflow.db)")
    parser.add_argument("--accelerator", help="Lightning accelerator: auto, cpu, gpu, cuda...")


@command(
    "confirm",
    add_confirm_arguments,
    help="retrain the best configurations with fresh seeds; export and recommend then keep the best mean",
)
def confirm_command(args: argparse.Namespace) -> int:
    keys = ("storage", "tracking_uri", "accelerator")
    spec = load_config(args.study_file, {k: getattr(args, k) for k in keys})
    from droptune.tuning._confirm import confirm

    quiet_libraries(getattr(args, "debug", False))
    done = []

    def progress(study: optuna.Study) -> None:
        done.append(1)
        say(err, f"confirm {spec.name}: {len(done)} retrains finished in this run")

    finalists = confirm(spec, top=args.top, seeds=args.seeds, progress=progress)
    out.print(finalists_table(finalists, metric=spec.objective.metric, name=spec.name), crop=False)  # too narrow a terminal wraps a row, losing nothing
    if not finalists:
        say(out, "no retrain completed: nothing confirmed.")
        return 1
    say(out, f"kept: trial {finalists[0].trial} (best mean). `droptune export {args.study_file}` and "
        "`droptune recommend` now use it.")
    return 0


def finalists_table(finalists: list[Finalist], *, metric: str, name: str) -> Table:
    """The finalists, best confirmed mean first: the search's single value beside the mean ± sd."""
    table = Table(title=f"confirmed finalists of {name} ({metric}, mean ± sd over fresh seeds)")
    for column in ("trial", "search value (1 seed)", "confirmed mean ± sd", "gap mean ± sd", "retrains"):
        table.add_column(column, justify="right")
    for f in finalists:
        table.add_row(
            f"{f.trial} ({f.baseline.replace('_', ' ')})" if f.baseline else str(f.trial), f"{f.search_value:.4g}", f"{f.value_mean:.4g} ± {f.value_sd:.2g}",
            f"{f.gap_mean:.3g} ± {f.gap_sd:.2g}", str(f.n),
        )
    return table
