"""``droptune export``: write the best (or a given) trial's rates for training code."""

from __future__ import annotations

import argparse
import sys

from droptune.commands._base import command, err

# droptune.export.EXPORT_FORMATS, repeated so that `--help` imports no Optuna (a test checks).
EXPORT_FORMATS = ("yaml", "json", "python")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY_FILE|STUDY_NAME", help="a study file, or a study name in --storage")
    parser.add_argument("--storage", help="Optuna storage URL (default: the file's, or sqlite:///studies/droptune.db)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        help="yaml, json, or a python snippet applying the rates to `model` (default: from -o's suffix, else yaml)",
    )
    parser.add_argument("--trial", type=int, metavar="N", help="export trial N instead of the best one")


@command("export", add_export_arguments, help="export the best trial's dropout rates (YAML, JSON or Python)")
def export_command(args: argparse.Namespace) -> int:
    from droptune.export import export_best, format_from_path, render_export, write_export
    from droptune.recommend import open_study

    study = open_study(args.study, storage=args.storage)
    config = export_best(study, trial=args.trial)
    if args.output is None:
        sys.stdout.write(render_export(config, args.format or "yaml"))
        sys.stdout.flush()
        return 0
    fmt = args.format or format_from_path(args.output)
    path = write_export(config, args.output, fmt)
    err.print(
        f"wrote {path} ({fmt}): study {config['study']!r}, trial {config['trial']}, value {config['value']:.5g}, "
        f"{len(config['rates'])} sites.",
        highlight=False,
        markup=False,
    )
    if "confirmed" in config:  # chosen by its mean over fresh seeds (droptune confirm): say so
        c = config["confirmed"]
        err.print(
            f"confirmed over {c['n']} fresh seeds: mean {c['value_mean']:.5g} ± {c['value_sd']:.2g} (sd); "
            "the single-seed value above is partly luck.",
            highlight=False,
            markup=False,
        )
    return 0
