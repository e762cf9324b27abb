"""What droptune sees in a model, before any GPU hour is spent: sites, unreachable calls, advice.

It needs both sites/ (what is found) and space/ (how the search ties the sites into
groups and schedules), so it sits above them: space/ imports sites/, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from droptune.sites import Discovery, DropoutSite, Unreachable, find_sites
from droptune.space import SearchSpace

# The seed notes: input dropout around 0.1-0.2; above this it destroys the signal.
HIGH_INPUT_RATE = 0.3


@dataclass(frozen=True)
class SiteRow:
    """One line of the site table."""

    name: str
    kind: str
    layer_type: str
    why: str
    rate: float
    live: bool
    group: str  # the search variable it is tied to ("" when it is not tuned)
    share: float  # its share of that variable (the model's own schedule), 1.0 when flat


@dataclass
class SiteReport:
    """The site table of a model, the dropout calls out of reach, and placement advice."""

    rows: list[SiteRow]
    unreachable: list[Unreachable] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    traced: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON-able): what a tracker logs as the study's site table."""
        return {
            "traced": self.traced,
            "sites": [asdict(r) for r in self.rows],
            "unreachable": [asdict(u) for u in self.unreachable],
            "advice": list(self.advice),
        }

    def to_text(self) -> str:
        """The site table as plain aligned text (one site a line, the reason last), then the
        unreachable calls and the advice: what ``droptune inspect`` prints."""
        header = ("site", "kind", "type", "rate", "live", "tied to", "why")
        rows = [header] + [
            (
                r.name, r.kind, r.layer_type, f"{r.rate:g}", "yes" if r.live else "no",
                (r.group + (f" x{r.share:.2f}" if r.share != 1.0 else "")) if r.group else "-", r.why,
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines = [f"{len(self.rows)} dropout sites"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows]
        lines += [f"unreachable: {u.describe()}" for u in self.unreachable]
        lines += [f"warning: {line}" for line in self.advice]
        return "\n".join(lines)


def inspect_model(
    model: nn.Module,
    example_input: Any = None,
    *,
    layer_types: Mapping[str, str] | None = None,
    space: SearchSpace | None = None,
) -> SiteReport:
    """Every dropout site of ``model`` with its type and why, liveness, tied group, and advice.

    Args:
        model: The model, unchanged by this call.
        example_input: One input for ``model(...)``; without it only module-held sites are
            found and nothing is known about liveness or placement.
        layer_types: The study's ``layer_types`` overrides.
        space: The study's search space (its granularity names the groups); the default
            :class:`~droptune.space.SearchSpace` when None.

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
        >>> report = inspect_model(net, torch.randn(2, 4))
        >>> [(r.name, r.layer_type, r.group) for r in report.rows]
        [('1', 'dense', 'dense')]
        >>> report.advice[0].startswith("1: dropout right before BatchNorm1d")
        True
    """
    space = space or SearchSpace()
    found = find_sites(model, example_input, layer_types=layer_types, warn=False)
    try:
        tuned = space.select(found.sites)
    except Exception:  # nothing to tune is worth showing too: the table says why
        tuned = []
    shares = space.shares(tuned)
    variables = space.variables(tuned)
    rows = [
        SiteRow(
            s.name, s.kind, s.layer_type, s.why, s.rate, s.live, variables.get(s.name, ""), shares.get(s.name, 1.0)
        )
        for s in found.sites
    ]
    advice = _advice(found) + space.notes(tuned)
    return SiteReport(rows, found.unreachable, advice, traced=found.trace is not None)


def _advice(found: Discovery) -> list[str]:
    """Placement warnings from the seed notes, one line each."""
    out = []
    for site in found.sites:
        out += _site_advice(site, found)
    for call in found.unreachable:
        out.append(f"{call.describe()}: a literal rate, out of droptune's reach")
    return out


def _site_advice(site: DropoutSite, found: Discovery) -> list[str]:
    out = []
    calls = found.calls_of(site)
    before = {c.next_module for c in calls if c.next_module and not c.added_first}  # an add first: a different tensor
    norms = sorted(k for k in before if k.startswith("BatchNorm"))
    if norms:
        out.append(
            f"{site.name}: dropout right before {norms[0]}: BatchNorm learns statistics of the dropped "
            "activations that differ at evaluation (the variance shift); put dropout after the last "
            "BatchNorm, or drop it here"
        )
    if calls and any(c.next_module is None for c in calls) and site.layer_type not in ("attention", "residual"):
        out.append(
            f"{site.name}: dropout after the last layer with parameters drops the model's output "
            "(logits); apply it to the features before the output layer instead"
        )
    if site.layer_type == "input" and site.rate > HIGH_INPUT_RATE:
        out.append(
            f"{site.name}: input dropout at {site.rate:g} is high; the notes put input dropout at "
            f"0.1-0.2 (droptune searches 0-{HIGH_INPUT_RATE:g})"
        )
    if not site.live:
        out.append(f"{site.name}: never runs on the example input (inactive): listed, not tuned")
    return out
