"""How the CLI writes to a terminal, a pipe or a log file: prose wrapped by words, logs without logger names.

A terminal wraps a line longer than its width wherever the width falls, often mid-word
(``droptu|ne.db``); rich's own wrapping folds a word longer than a line, which breaks a path
in two when copied. So prose is wrapped here, by words, at the terminal's width, and a
word longer than a line (a path, a URL) is kept whole on a line of its own.

Where no width is known (no standard stream is a terminal and ``COLUMNS`` is unset: a pipe,
a log file, CI), nothing is wrapped: each paragraph is one line, and a table is as wide as
its content. Rich would otherwise assume 80 columns and wrap at 80 whatever reads it.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.text import Text

#: The width of a console that no terminal bounds: wider than any line droptune prints.
UNBOUNDED = 10_000
_STD_FDS = (0, 1, 2)


def known_width() -> int | None:
    """The width of the terminal the user reads: ``COLUMNS``, else any standard stream's; None if none."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for fd in _STD_FDS:  # `droptune recommend | tee log` still shows on the terminal of stdin/stderr
        try:
            width = os.get_terminal_size(fd).columns
        except (OSError, ValueError):
            continue
        if width > 0:
            return width
    return None


class TerminalConsole(Console):
    """A rich console as wide as the user's terminal, or unbounded where there is none (see the module)."""

    @property
    def size(self) -> ConsoleDimensions:
        if self._width is None and known_width() is None:
            return ConsoleDimensions(UNBOUNDED, super().size.height)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def wrap_words(text: str, width: int) -> str:
    """``text`` wrapped by words to ``width`` columns, each line on its own; a longer word kept whole.

    A line's leading spaces indent its continuation lines too.

    Example:
        >>> print(wrap_words("open sqlite:///a/long/path/mlflow.db now", 12))
        open
        sqlite:///a/long/path/mlflow.db
        now
        >>> print(wrap_words("  droptune ui study.yaml", 14))
          droptune ui
          study.yaml
    """
    lines = []
    for line in text.split("\n"):
        indent = re.match(r"\s*", line).group()  # type: ignore[union-attr]  # \s* always matches
        lines.extend(
            textwrap.wrap(
                line, width=width, initial_indent="", subsequent_indent=indent, break_long_words=False,
                break_on_hyphens=False, drop_whitespace=True,
            )
            if len(line) > width
            else [line]
        )
    return "\n".join(lines)


def say(console: Console, text: str, *, lead_style: str | None = None, **kwargs: Any) -> None:
    """Print prose on ``console`` verbatim (no markup), wrapped by words at its width.

    Args:
        console: The CLI's stdout or stderr console.
        text: Plain text; ``\\n`` starts a new line.
        lead_style: A rich style for the first word (``error:`` in red).
        kwargs: Passed to :meth:`rich.console.Console.print` (``style``, ``end``).
    """
    shown = Text(wrap_words(text, console.width))
    if lead_style is not None:
        shown.stylize(lead_style, 0, len(text.split(" ", 1)[0]))
    console.print(shown, highlight=False, soft_wrap=True, **kwargs)


class ConsoleLogHandler(logging.Handler):
    """Log records as ``warning: message`` on a console, wrapped as prose; the logger's name only with ``--debug``.

    Printing through the console, not the raw stream, keeps a log line from tearing a live
    progress bar that the same console draws.
    """

    def __init__(self, console: Console, *, debug: bool = False) -> None:
        super().__init__()
        self.console = console
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if debug else "%(message)s"))
        self.debug = debug

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if not self.debug:
                text = f"{record.levelname.lower()}: {text}"
            say(self.console, text)
        except Exception:  # as logging.StreamHandler: a failed log line must not fail the command
            self.handleError(record)
