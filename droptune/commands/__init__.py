"""The CLI's subcommands; importing this package registers them with droptune.cli."""

from __future__ import annotations

from droptune.commands import (  # noqa: F401
    _export,
    _recommend,
    _tune,  # noqa: F401
    _ui,
    _worker,  # noqa: F401
)

__all__: list[str] = []
