"""What every subcommand module shares: the consoles and the ``@command`` decorator.

A subcommand module imports from here, never from :mod:`droptune.cli` (which imports the
subcommands: the other way round would be an import cycle).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass

from droptune.commands._terminal import TerminalConsole, say

# Tables and summaries go to stdout; logs and progress to stderr so JSON output stays clean.
# Print prose with `say` (wrapped by words at the terminal's width): see commands/_terminal.
out = TerminalConsole()
err = TerminalConsole(stderr=True)
__all__ = ["Command", "add_studies_arguments", "command", "err", "out", "quiet_libraries", "say"]

Handler = Callable[[argparse.Namespace], int]

# Libraries whose INFO logs are noise on droptune's terminal (they show with --debug).
NOISY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "optuna", "alembic", "mlflow", "urllib3")


def quiet_libraries(debug: bool = False) -> None:
    """Set the stack's loggers to WARNING (DEBUG with ``--debug``).

    Lightning and Optuna set their loggers to INFO when they are first imported, and the CLI
    imports them only once a study file has passed its schema check: a command calls this
    again after importing them.
    """
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, help line, argument setup and handler (call it to run it)."""

    name: str
    setup: Callable[[argparse.ArgumentParser], None]
    help: str
    handler: Handler

    def __call__(self, args: argparse.Namespace) -> int:
        return self.handler(args)


def command(name: str, setup: Callable[[argparse.ArgumentParser], None], help: str) -> Callable[[Handler], Command]:
    """Describe a subcommand: ``setup`` adds its arguments, the decorated function runs it.

    The result is listed in :data:`droptune.cli.COMMANDS`, which is what makes it a command.
    """

    def describe(handler: Handler) -> Command:
        return Command(name=name, setup=setup, help=help, handler=handler)

    return describe


def add_studies_arguments(parser: argparse.ArgumentParser) -> None:
    """The finished studies a command reads (``recommend``, ``report``): files or names, pooled."""
    parser.add_argument(
        "studies",
        nargs="+",
        metavar="STUDY_FILE|STUDY_NAME",
        help="study files, or study names in --storage; several are pooled (e.g. several models)",
    )
    parser.add_argument("--storage", help="Optuna storage URL (default: the file's, or sqlite:///studies/droptune.db)")
    parser.add_argument(
        "--top",
        type=float,
        default=0.2,
        metavar="Q",
        help="fraction of each study's complete trials, best first, to draw from (default 0.2; at least 3 trials)",
    )
