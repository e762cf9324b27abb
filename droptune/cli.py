"""The ``droptune`` command: parse arguments, load the study file, call the API, print.

Every subcommand is listed in :data:`COMMANDS`, and only there. To add one, write
``droptune/commands/_name.py`` with a handler decorated by
``droptune.commands._base.command(name, setup, help=...)`` (import ``out``/``err`` from that
module too, never from this one), then add one line to the tuple below:
``_name.name_command,``. The tuple's order is the order of ``droptune --help``.

A DroptuneError is printed as one message and exits 2 (``--debug`` shows the traceback);
any other exception is a bug and crashes.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import sys
import warnings

from droptune import __version__
from droptune.commands import (
    _confirm,
    _export,
    _init,
    _inspect,
    _recommend,
    _report,
    _tune,
    _ui,
    _wait,
    _worker,
)
from droptune.commands._base import Command, err, quiet_libraries, say
from droptune.commands._terminal import ConsoleLogHandler
from droptune.exceptions import DroptuneError

COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        _tune.tune_command,
        _worker.worker_command,
        _wait.wait_command,
        _confirm.confirm_command,
        _ui.ui_command,
        _recommend.recommend_command,
        _export.export_command,
        _inspect.inspect_command,
        _report.report_command,
        _init.init_command,
    )
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="droptune",
        description="Tune the dropout rates of PyTorch Lightning models, layer by layer. A study file names "
        "Python classes (model, data, loss) that droptune imports and runs: run study files you trust.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--version", action="version", version=f"droptune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in COMMANDS.values():
        entry.setup(sub.add_parser(entry.name, help=entry.help, description=entry.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``droptune`` console script; returns the exit code.

    Called as the program (``argv`` None), the interpreter's exit skips garbage collection of
    the half a million objects torch, Lightning, Optuna and MLflow leave: see :func:`_fast_exit`.
    """
    if argv is None:
        _fast_exit()
    parser = build_parser()
    args = parser.parse_args(argv)
    # `warning: message`, wrapped as the rest of droptune's prose; the logger's name only with --debug.
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        handlers=[ConsoleLogHandler(err, debug=args.debug)],
        force=True,
    )
    # Lightning 2.6 on torch 2.13 warns about its own use of a torch API once per trial.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # MLflow sets its own loggers to INFO when it is first imported (maybe after this): tell it too.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if args.debug else "WARNING")
    quiet_libraries(args.debug)  # and again by the commands that import Lightning or Optuna, after they do
    from droptune._signals import handle_sigterm  # SIGTERM (Slurm, Kubernetes) stops a trial as Ctrl-C does

    handle_sigterm()
    from droptune.stores._damage import forget  # the stores a damage report may name: this command's

    forget()
    try:
        return COMMANDS[args.command](args)
    except DroptuneError as error:
        if args.debug:
            raise
        return _refuse(args.command, error)
    except Exception as error:
        from droptune.stores._damage import damaged_store_error

        damaged = damaged_store_error(error)  # a damaged SQLite store: named, with its repair
        if damaged is None or args.debug:
            raise
        return _refuse(args.command, damaged)
    except KeyboardInterrupt as error:
        say(err, interrupted_message(args.command, error))
        return 130


def _fast_exit() -> None:
    """At exit, close the database connections, then freeze the garbage collector.

    Tearing the modules down, the interpreter collects cycles again and again over every object
    the stack made: 2 to 8 s (idle or busy 2-core CPU) after a study's last line. Frozen objects
    are skipped, so their cycles are never collected: the SQLite connections that SQLAlchemy
    pools (Optuna's and MLflow's stores) would then stay open, their write-ahead logs beside the
    databases. So they are closed first. Exit handlers registered later (MLflow's,
    ``weakref.finalize``) run before this one; ``logging.shutdown`` and the flush of stdout and
    stderr still follow. Tests, which call :func:`main` with arguments, keep their collector.
    """
    atexit.register(_close_and_freeze)


def _close_and_freeze() -> None:
    sqlalchemy = sys.modules.get("sqlalchemy.engine")
    if sqlalchemy is not None:  # a store was opened
        # type(), not isinstance(): some of torch's lazy objects warn when their class is read.
        for engine in [o for o in gc.get_objects() if issubclass(type(o), sqlalchemy.Engine)]:
            try:
                engine.dispose()
            except Exception:  # exiting anyway: the database is as its last commit left it
                logging.getLogger(__name__).debug("could not close %r", engine, exc_info=True)
    gc.freeze()


def interrupted_message(command: str, error: KeyboardInterrupt) -> str:
    """What Ctrl-C or SIGTERM stopped: trials recorded as failed only when some were."""
    from droptune._signals import TrialsStopped

    resume = "; run the same command to resume." if command in ("tune", "worker", "confirm") else "."
    if isinstance(error, TrialsStopped):
        n = error.n_trials
        if n == 0:
            return f"interrupted: no trial of this process was running{resume}"
        trials = "the running trial was" if n == 1 else f"the {n} running trials were"
        return f"interrupted: {trials} recorded as failed{resume}"
    return f"interrupted{resume}"


def _refuse(command: str, error: DroptuneError) -> int:
    """Print ``error`` as one message and the usage hint; the exit code 2."""
    # Verbatim (a message may hold "[...]"), wrapped by words: a path stays whole, copyable.
    say(err, f"error: {error}", lead_style="bold red")
    say(err, f"(run `droptune {command} --help` for usage)")
    return 2


if __name__ == "__main__":
    sys.exit(main())
