"""The ``droptune`` command: parse arguments, load the study file, call the API, print.

Subcommands are registered in :data:`COMMANDS`. A DroptuneError is printed as one message
and exits 2 (``--debug`` shows the traceback); any other exception is a bug and crashes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable

from rich.console import Console

from droptune import __version__
from droptune.exceptions import DroptuneError

# Tables and summaries go to stdout; logs and progress to stderr so JSON output stays clean.
out = Console(soft_wrap=True)
err = Console(stderr=True)

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], argparse.ArgumentParser], Handler]] = {}


def command(name: str, setup: Callable[[argparse.ArgumentParser], None], help: str) -> Callable[[Handler], Handler]:
    """Register a subcommand: ``setup`` adds its arguments, the decorated function runs it."""

    def register(handler: Handler) -> Handler:
        def make(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
            parser = sub.add_parser(name, help=help, description=help)
            setup(parser)
            return parser

        COMMANDS[name] = (make, handler)
        return handler

    return register


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered subcommand."""
    import droptune.commands  # noqa: F401  (registers the subcommands)

    parser = argparse.ArgumentParser(
        prog="droptune", description="Tune the dropout rates of PyTorch Lightning models, layer by layer."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"droptune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for make, _ in COMMANDS.values():
        make(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``droptune`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # Lightning 2.6 on torch 2.13 warns about its own use of a torch API once per trial.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # MLflow sets its own loggers to INFO when it is first imported (maybe after this): tell it too.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if args.debug else "WARNING")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "optuna", "alembic", "mlflow", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.debug else logging.WARNING)
    _, handler = COMMANDS[args.command]
    try:
        return handler(args)
    except DroptuneError as error:
        if args.debug:
            raise
        err.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        err.print(f"(run `droptune {args.command} --help` for usage)", highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: the running trial was recorded as failed; run the same command to resume.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
