"""``droptune init``: write an example study file into the current folder (no repository needed)."""

from __future__ import annotations

import argparse

from droptune.commands._base import command, err, out, say
from droptune.examples import DEFAULT_EXAMPLE, example_names, example_summary, write_example


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "example",
        nargs="?",
        default=DEFAULT_EXAMPLE,
        metavar="EXAMPLE",
        help=f"which example (default {DEFAULT_EXAMPLE}; --list shows them)",
    )
    parser.add_argument("-o", "--output", metavar="PATH", help="file or folder to write (default ./EXAMPLE.yaml)")
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")
    parser.add_argument("--list", action="store_true", help="list the examples and exit")


@command("init", add_init_arguments, help="write an example study file to start from")
def init_command(args: argparse.Namespace) -> int:
    if args.list:
        for name in example_names():
            say(out, f"{name:<20} {example_summary(name)}")
        return 0
    path = write_example(args.example, args.output, force=args.force)
    say(err, f"wrote {path}; now run:")
    say(out, f"droptune tune {path}")
    return 0
