"""The CLI's subcommands; importing this package registers them with droptune.cli."""

from __future__ import annotations

from droptune.commands import _tune  # noqa: F401
from droptune.commands import _worker  # noqa: F401
from droptune.commands import _export, _recommend, _ui  # noqa: F401

__all__: list[str] = []
