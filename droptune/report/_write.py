"""The study report: the recommendation with its evidence, how sure it is, and the plots."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from droptune._io import atomic_write_text
from droptune.exceptions import ConfigError, StudyError
from droptune.recommend import basis, caveats, compute, evidence, which_figure
from droptune.recommend._confirmed import confirmed_note
from droptune.recommend._recommend import Recommendation
from droptune.recommend._transfer import transfer_note
from droptune.report import _figures as figs
from droptune.report._data import OVERFIT_RISE, TrialRow, trial_rows
from droptune.report._html import counts_line, esc, figure, page, sites_table, table

log = logging.getLogger(__name__)

OVERFIT_MEANS = (
    f"A trial overfits (red) when its objective ended at least {OVERFIT_RISE:.0%} worse than at its best epoch "
    "while its gap (validation minus training loss, both with dropout off) widened."
)


def render_report(
    studies: optuna.Study | Sequence[optuna.Study],
    *,
    top: float = 0.2,
    sites: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The report of ``studies`` as one self-contained HTML document.

    Args:
        studies: One study or several (their recommendation is pooled, as ``recommend`` does).
        top: Fraction of each study's complete trials the recommendation is drawn from.
        sites: Per study name, what ``droptune inspect`` found in its model
            (``SiteReport.as_dict()``): the sites table then lists every site with its kind,
            liveness, tie and the reason for its type.

    Returns:
        The HTML text. A study too small to recommend from still gets its plots, and the
        page says why there is no recommendation.

    Raises:
        ConfigError: If no study is given or ``top`` is not in (0, 1].
    """
    studies = [studies] if isinstance(studies, optuna.Study) else list(studies)
    if not studies:
        raise ConfigError("report: give at least one study.")
    names = ", ".join(s.study_name for s in studies)
    parts = [_recommendation_section(studies, top)]
    for study in studies:
        parts.append(_study_section(study, top, several=len(studies) > 1, found=(sites or {}).get(study.study_name)))
    return page(f"droptune report: {names}", "".join(parts))


def write_report(
    studies: optuna.Study | Sequence[optuna.Study],
    path: str | os.PathLike[str],
    *,
    top: float = 0.2,
    sites: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """Write the report of ``studies`` to ``path`` (an HTML file that needs no network to open).

    The file is written whole or not at all (a temporary file renamed into place), with
    the permissions the user's umask gives a new file.

    Args:
        studies: One study or several.
        path: The HTML file to write; its folder is created.
        top: Fraction of each study's complete trials the recommendation is drawn from.
        sites: Per study name, the model's site report (see :func:`render_report`).

    Returns:
        The path written.

    Raises:
        ConfigError: If the arguments are invalid or the file cannot be written.
    """
    text = render_report(studies, top=top, sites=sites)
    return atomic_write_text(path, text, what="report")


def _recommendation_section(studies: list[optuna.Study], top: float) -> str:
    try:
        items, notes = compute(studies, top=top, by="type")
    except StudyError as err:
        return f'<h2>Recommendation</h2><div class="warn">No recommendation yet: {esc(err)}</div>'
    recs: list[Recommendation] = items
    said = basis(studies, top=top)
    rows = [
        [r.layer_type, f"{r.recommended:.3f}", f"{r.low:.3f}-{r.high:.3f}", f"{r.best:.3f}", f"{r.prior:.2f}",
         "n/a" if r.importance is None else f"{r.importance:.2f}", r.n_trials, ", ".join(r.sites)]
        for r in recs
    ]
    html = [
        "<h2>Recommendation</h2>",
        f"<p>Dropout rate per layer type, {esc(said)} (top {top:.0%} of each study, at least 3).</p>",
        table(["layer type", "rate", "IQR", "best", "prior", "importance", "trials", "sites"], rows,
              classes=["text", "rate", "", "", "", "", "", "text"]),
        "<h3>The evidence, in words</h3><ul>",
        *(f"<li>{esc(evidence(r, said))}</li>" for r in recs),
        "</ul>",
        f"<p>{esc(which_figure(recs))}</p>",
        # droptune confirm: which configuration is kept, with its mean ± sd over fresh seeds
        *(f'<div class="ok">{esc(note)}</div>' for note in filter(None, map(confirmed_note, studies))),
        "<h3>How sure</h3>",
    ]
    found = caveats(studies, top=top)
    if found:
        html += [f'<div class="warn">{esc(c)}</div>' for c in found]
    else:
        html.append('<div class="ok">No warning: enough trials, values apart, learning, not cut short.</div>')
    html.append(f"<h3>For another model</h3><p>{esc(transfer_note(studies))}</p>")
    html += [f'<p class="muted">{esc(n)}</p>' for n in notes]
    return "".join(html)


def _study_section(study: optuna.Study, top: float, *, several: bool, found: Mapping[str, Any] | None) -> str:
    rows = trial_rows(study)
    metric = (study.metric_names or ["objective"])[0] if hasattr(study, "metric_names") else "objective"
    direction = study.direction.name.lower()
    best = figs.best_number(study)
    slug = "".join(c if c.isalnum() else "-" for c in study.study_name)
    html = [
        f"<h2>Study {esc(study.study_name)}</h2>" if several else "<h2>Trials</h2>",
        f"<p>{esc(counts_line(rows))} trials; the objective is to {direction} {esc(metric)}"
        + (f"; the best is trial {best}." if best is not None else ".") + "</p>",
    ]
    makers = [
        ("parallel", "Rates, objective and gap of every complete trial", lambda: (figs.parallel_figure(rows, metric), [])),
        ("gap", "Which trials overfit", lambda: (figs.gap_figure(rows, best), [OVERFIT_MEANS])),
        ("importance", "Which rates matter, for the objective and for the gap", lambda: figs.importance_figure(study, metric)),
        ("history", "History, pruned trials included", lambda: (figs.history_figure(rows, metric, direction), [])),
        ("intermediate", "Per epoch: what pruning saw", lambda: (figs.intermediate_figure(study, metric), [])),
    ]
    for key, heading, make in makers:
        html.append(f"<h3>{esc(heading)}</h3>")
        try:
            fig, notes = make()
        except Exception as err:  # a plot is a nice-to-have: a degenerate study still gets its page
            log.debug("report plot %s failed", key, exc_info=True)
            fig, notes = None, [f"left out: {type(err).__name__}: {err}"]
        if fig is None and key in ("gap", "intermediate"):
            notes = ["left out: the trials record no per-epoch curves."]
        html += [f'<p class="muted">{esc(n)}</p>' for n in notes]
        if fig is not None:
            html.append(figure(fig, f"{slug}-{key}"))
    html.append("<h3>Dropout sites</h3>")
    html.append(sites_table(rows, best, _per_site(study, top), found))
    html.append(_trials_table(rows))
    return "".join(html)


def _per_site(study: optuna.Study, top: float) -> dict[str, float]:
    try:
        items, _ = compute([study], top=top, by="site")
    except StudyError:
        return {}
    return {i.site: i.recommended for i in items}


def _trials_table(rows: list[TrialRow]) -> str:
    types = figs.layer_types_of(rows)
    lines = [
        [r.number, r.state + (" (prior)" if r.prior else ""), _fmt(r.value), _fmt(r.gap),
         *(_fmt(r.rates.get(t)) for t in types), r.epochs or "-", "yes" if r.overfits else ""]
        for r in rows
    ]
    header = ["trial", "state", "value", "gap", *(f"rate: {t}" for t in types), "epochs", "overfits"]
    return "<details><summary>Every trial</summary>" + table(header, lines, classes=["", "text"]) + "</details>"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
