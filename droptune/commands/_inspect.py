"""``droptune inspect``: every dropout site droptune sees in a model, before anything is tuned."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from droptune.commands._base import command, err, out, say
from droptune.exceptions import ConfigError

if TYPE_CHECKING:
    from droptune.config import StudySpec
    from droptune.inspect import SiteReport


def add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="STUDY_FILE|CLASS_PATH",
        help="a study file (its model, data and layer_types), or the class path of a model built with no arguments",
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


@command("inspect", add_inspect_arguments, help="show the model's dropout sites, their types, and placement advice")
def inspect_command(args: argparse.Namespace) -> int:
    report = site_report(args.target)
    if args.json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return 0
    # Columns aligned as a table: printed as they are (a pipe gets them whole), not re-wrapped.
    out.print(report.to_text(), markup=False, highlight=False, soft_wrap=True)
    if not report.traced:
        say(err, "no example input: only module-held sites are shown, liveness and placement unchecked.")
    return 0


def site_report(target: str) -> SiteReport:
    """The site report of a study file's model (with its example input) or of a class path."""
    from droptune.inspect import inspect_model

    model, spec, data = build_target(target)
    if spec is not None:
        from droptune.tuning import space_of
        from droptune.tuning._build import example_input

        return inspect_model(
            model, example_input(model, data), layer_types=spec.search.layer_types, space=space_of(spec)
        )
    return inspect_model(model, getattr(model, "example_input_array", None))


def build_target(target: str) -> tuple[Any, StudySpec | None, Any]:
    """``(model, spec, data)`` of a study file, or ``(model, None, None)`` of a class path built with no arguments."""
    path = Path(target)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        from droptune.config import load_config
        from droptune.tuning._build import build

        spec = load_config(path)
        model, data = build(spec)
        return model, spec, data
    from droptune.config import ClassSpec

    cls = ClassSpec(class_path=target).resolve()
    try:
        model = cls()
    except TypeError as error:
        raise ConfigError(
            f"{target} cannot be built without arguments ({error}); write a study file naming it with "
            "init_args and inspect that."
        ) from None
    return model, None, None
