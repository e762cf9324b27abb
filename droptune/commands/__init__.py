"""The CLI's subcommands, one module each; :data:`droptune.cli.COMMANDS` lists them."""

from __future__ import annotations

__all__: list[str] = []
