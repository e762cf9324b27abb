"""The report page: plain HTML with the plots inline and plotly.js inlined once.

No file is fetched when the page opens (no CDN, no fonts): it can be mailed, attached to
an MLflow run or opened offline.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from droptune.report._data import TrialRow

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1.5rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.6rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #e5e5e5; text-align: right; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.rate { font-weight: 700; font-size: 1.05rem; }
.muted { color: #666; font-size: 0.9rem; } .warn { background: #fff4e5; border-left: 4px solid #ff9800;
  padding: 0.5rem 0.9rem; margin: 0.4rem 0; } .ok { background: #eef7ee; border-left: 4px solid #4caf50;
  padding: 0.5rem 0.9rem; } .figure { margin: 1rem 0 2rem; } code { background: #f3f3f3; padding: 0 0.25rem; }
"""


def esc(text: object) -> str:
    """HTML-escaped text."""
    return html.escape(str(text), quote=True)


def table(header: Sequence[str], rows: Sequence[Sequence[object]], *, classes: Sequence[str] = ()) -> str:
    """An HTML table; ``classes`` gives a CSS class per column (``text``, ``rate``)."""
    cls = list(classes) + [""] * (len(header) - len(classes))
    head = "".join(f'<th class="{c}">{esc(h)}</th>' for h, c in zip(header, cls))
    body = "".join("<tr>" + "".join(f'<td class="{c}">{esc(v)}</td>' for v, c in zip(row, cls)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(fig: go.Figure, div_id: str) -> str:
    """A plot as a ``<div>`` and its script; plotly.js itself is in the page head."""
    return '<div class="figure">' + fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                                 config={"displaylogo": False, "responsive": True}) + "</div>"


def page(title: str, body: str) -> str:
    """The whole document: head with the style and plotly.js, then ``body``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{STYLE}</style>"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>"
        f"<h1>{esc(title)}</h1><p class=\"muted\">written by droptune on {stamp}</p>{body}</body></html>\n"
    )


def sites_table(
    rows: Sequence[TrialRow], best: int | None, per_site: dict[str, float], found: Mapping[str, Any] | None = None
) -> str:
    """One row per dropout site: its layer type, the best trial's rate, the median of the top trials.

    ``found`` is what ``droptune inspect`` finds in the model (``SiteReport.as_dict()``):
    with it, every site of the model is listed (tuned or not) with its kind, whether it is
    live, the variable it is tied to and why it has its type.
    """
    chosen = next((r for r in rows if r.number == best), None)
    if chosen is None or not chosen.sites:
        return '<p class="muted">No complete trial records its sites.</p>'
    if not found or not found.get("sites"):
        lines = [
            [site, chosen.layer_types.get(site, "?"), f"{rate:.4f}", _fmt(per_site.get(site))]
            for site, rate in chosen.sites.items()
        ]
        return table(
            ["site", "layer type", f"best trial ({chosen.number})", "median of the top trials"],
            lines,
            classes=["text", "text"],
        )
    lines = [
        [
            s["name"], s["kind"], s["layer_type"], "yes" if s.get("live") else "no", s.get("group") or "not tuned",
            _fmt(chosen.sites.get(s["name"])), _fmt(per_site.get(s["name"])), s.get("why", ""),
        ]
        for s in found["sites"]
    ]
    header = ["site", "kind", "layer type", "live", "tied to", f"best trial ({chosen.number})", "median of the top", "why"]
    advice = "".join(f'<div class="warn">{esc(a)}</div>' for a in found.get("advice", []))
    return table(header, lines, classes=["text", "text", "text", "text", "text", "", "", "text"]) + advice


def counts_line(rows: Sequence[TrialRow]) -> str:
    """``11 complete, 4 pruned, 1 failed`` in words."""
    states: dict[str, int] = {}
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
    names = {"complete": "complete", "pruned": "pruned", "fail": "failed", "running": "running"}
    return ", ".join(f"{states[s]} {names[s]}" for s in names if states.get(s)) or "no trials"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
