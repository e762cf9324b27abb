"""Recommendations as a terminal table (rich) and as plain data (JSON/YAML)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from rich import box
from rich.table import Table
from rich.text import Text

from droptune.recommend._recommend import Recommendation, SiteRecommendation

FORMATS = ("table", "json", "yaml")


def recommendation_table(
    items: Sequence[Recommendation] | Sequence[SiteRecommendation], *, title: str | None = None
) -> Table:
    """A rich table with one row per layer type (or site)."""
    by_site = bool(items) and isinstance(items[0], SiteRecommendation)
    # Text, not markup: a study name like "[x]" is shown as it is.
    shown = None if title is None else Text(title)
    # No edge: SIMPLE_HEAD draws its top and bottom edges as lines of blanks.
    table = Table(title=shown, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    if by_site:
        table.add_column("site", overflow="fold", min_width=7)  # the table fits 80 columns
    table.add_column("layer type", no_wrap=True)
    # "rate" is the recommended one (the title says so); short headers leave room for sites.
    for header in ("rate", "IQR", "best", "prior", "importance", "trials"):
        table.add_column(header, justify="right", no_wrap=True, style="bold" if header == "rate" else None)
    if not by_site:
        table.add_column("sites", overflow="fold", min_width=5)  # the table fits 80 columns
    for item in items:
        row = [item.site] if isinstance(item, SiteRecommendation) else []
        row += [
            item.layer_type,
            f"{item.recommended:.3f}",
            f"{item.low:.3f}-{item.high:.3f}",
            f"{item.best:.3f}",
            f"{item.prior:.2f}",
            "n/a" if item.importance is None else f"{item.importance:.2f}",
            str(item.n_trials),
        ]
        if isinstance(item, Recommendation):
            row.append(", ".join(item.sites))
        table.add_row(*row)
    return table


def recommendation_data(items: Sequence[Recommendation] | Sequence[SiteRecommendation]) -> list[dict[str, Any]]:
    """The recommendations as a list of plain dicts (the JSON/YAML schema)."""
    return [item.to_dict() for item in items]


def dump_recommendations(items: Sequence[Recommendation] | Sequence[SiteRecommendation], fmt: str) -> str:
    """The recommendations as ``json`` or ``yaml`` text."""
    data = recommendation_data(items)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    raise ValueError(f"format must be json or yaml; got {fmt!r}.")
