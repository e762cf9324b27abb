"""``droptune export``: write the best trial's rates (or the recommended ones) for training code."""

from __future__ import annotations

import argparse
import sys

from droptune.commands._base import command, err, say
from droptune.exceptions import ConfigError

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
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--best", dest="recommended", action="store_false",
        help="the best trial's rate per site, a configuration trained as a whole (the default)",
    )
    which.add_argument(
        "--recommended", action="store_true",
        help="the recommended rate per layer type (`droptune recommend`'s median of the top trials) on every site of that type",
    )
    parser.set_defaults(recommended=False)
    parser.add_argument("--trial", type=int, metavar="N", help="export trial N instead of the best one")
    parser.add_argument(
        "--top", type=float, default=0.2, metavar="FRACTION",
        help="with --recommended: the fraction of complete trials, best first, it is drawn from (default 0.2)",
    )


@command("export", add_export_arguments, help="export the best trial's dropout rates, or the recommended ones (YAML, JSON or Python)")
def export_command(args: argparse.Namespace) -> int:
    if args.recommended and args.trial is not None:
        raise ConfigError("--trial N exports one trial; --recommended, the rate per layer type: give one of them.")
    from droptune.export import (
        describe,
        export_best,
        export_recommended,
        format_from_path,
        render_export,
        write_export,
    )
    from droptune.stores import open_study

    study = open_study(args.study, storage=args.storage)
    config = export_recommended(study, top=args.top) if args.recommended else export_best(study, trial=args.trial)
    if args.output is None:
        sys.stdout.write(render_export(config, args.format or "yaml"))
        sys.stdout.flush()
        return 0
    fmt = args.format or format_from_path(args.output)
    path = write_export(config, args.output, fmt)
    value = f", value {config['value']:.5g}" if "value" in config else ""
    say(err, f"wrote {path} ({fmt}): study {config['study']!r}, {describe(config)}{value}, {len(config['rates'])} sites.")
    if "confirmed" in config:  # chosen by its mean over fresh seeds (droptune confirm): say so
        c = config["confirmed"]
        say(err, f"confirmed over {c['n']} fresh seeds: mean {c['value_mean']:.5g} ± {c['value_sd']:.2g} (sd); "
            "the single-seed value above is partly luck.")
    return 0
