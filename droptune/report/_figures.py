"""The report's interactive plots (plotly): Optuna's own where they fit, droptune's where not.

Optuna's plots know Optuna variables (one per site under granularity ``site``); the
parallel coordinates, importance, history and gap curves here are drawn per layer type
from the trial rows, so that they read the same whatever the granularity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import optuna
import plotly.graph_objects as go

from droptune.exceptions import StudyError
from droptune.recommend._importance import variable_importances
from droptune.recommend._recommend import _setters
from droptune.record import best_trial, rank_trials, site_types
from droptune.report._data import GAP_ATTR, TrialRow
from droptune.sites import LAYER_TYPES

BLUE, RED, GREY, ORANGE = "#1f77b4", "#d62728", "#9a9a9a", "#ff7f0e"
LAYOUT = {"template": "plotly_white", "height": 420, "margin": {"l": 60, "r": 30, "t": 50, "b": 50}}


def layer_types_of(rows: Sequence[TrialRow]) -> list[str]:
    """Layer types present in the trials, in :data:`droptune.LAYER_TYPES` order."""
    found = {t for row in rows for t in row.rates}
    return sorted(found, key=lambda t: (LAYER_TYPES.index(t) if t in LAYER_TYPES else len(LAYER_TYPES), t))


def parallel_figure(rows: Sequence[TrialRow], metric: str) -> go.Figure:
    """Parallel coordinates of the complete trials: rate per layer type, objective, gap."""
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    dims = [
        {"label": f"rate: {t}", "values": [r.rates.get(t, math.nan) for r in done], "range": [0.0, _top(done, t)]}
        for t in layer_types_of(done)
    ]
    dims.append({"label": metric, "values": [r.value for r in done]})
    dims.append({"label": "overfit gap", "values": [math.nan if r.gap is None else r.gap for r in done]})
    line = {"color": [r.value for r in done], "colorscale": "Viridis_r", "showscale": True}
    fig = go.Figure(go.Parcoords(line=line, dimensions=dims))
    fig.update_layout(**{**LAYOUT, "margin": {"l": 70, "r": 40, "t": 110, "b": 30}})
    fig.update_layout(title=f"{len(done)} complete trials: drag along an axis to select")
    return fig


def importance_figure(study: optuna.Study, metric: str) -> tuple[go.Figure | None, list[str]]:
    """Importance (optuna.importance) of each layer type's rates for the objective and the gap."""
    notes = []
    bars = []
    for name, target in ((metric, None), ("overfit gap", _gap_target)):
        per_variable, note = variable_importances(study, target=target)
        if per_variable is None:
            notes.append(f"importance for the {name}: {note}")
            continue
        grouped = _by_layer_type(study, per_variable)
        bars.append(go.Bar(name=f"for the {name}", x=list(grouped), y=list(grouped.values())))
    if not bars:
        return None, notes
    fig = go.Figure(bars)
    fig.update_layout(
        **LAYOUT, barmode="group", title="Which rates matter (share of the variation, sums to 1 per colour)"
    )
    fig.update_yaxes(title="importance", range=[0, 1])
    return fig, notes


def intermediate_figure(study: optuna.Study, metric: str) -> go.Figure | None:
    """Optuna's intermediate values: the objective per epoch of every trial, pruned ones too."""
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" and "no intermediate values" warnings
        fig = optuna.visualization.plot_intermediate_values(study)
    fig.update_layout(**LAYOUT, title=f"{metric} per epoch of every trial (what pruning saw)")
    fig.update_xaxes(title="epoch")
    values = [v for t in study.get_trials(deepcopy=False) for v in t.intermediate_values.values()]
    fig.update_yaxes(title=metric, **_y_axis(values))
    return fig


def history_figure(rows: Sequence[TrialRow], metric: str, direction: str) -> go.Figure:
    """Objective per trial, pruned trials at their last reported value, and the best so far."""
    fig = go.Figure()
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    pruned = [r for r in rows if r.state == "pruned" and r.value is not None]
    fig.add_scatter(x=[r.number for r in done], y=[r.value for r in done], mode="markers", name="complete",
                    marker={"color": BLUE, "size": 8}, text=[_hover(r) for r in done], hoverinfo="text")
    fig.add_scatter(x=[r.number for r in pruned], y=[r.value for r in pruned], mode="markers",
                    name="pruned (last value)", marker={"color": ORANGE, "symbol": "x", "size": 8},
                    text=[_hover(r) for r in pruned], hoverinfo="text")
    best: list[float] = []
    sign = 1.0 if direction == "minimize" else -1.0
    for row in done:
        value = float(row.value)  # type: ignore[arg-type]
        best.append(value if not best or sign * value < sign * best[-1] else best[-1])
    fig.add_scatter(x=[r.number for r in done], y=best, mode="lines", name="best so far",
                    line={"color": RED, "shape": "hv"})
    fig.update_layout(**LAYOUT, title=f"{metric} per trial")
    fig.update_xaxes(title="trial")
    fig.update_yaxes(title=metric, **_y_axis([r.value for r in [*done, *pruned]]))
    return fig


def gap_figure(rows: Sequence[TrialRow], best: int | None) -> go.Figure | None:
    """The overfitting gap per epoch of every trial; overfitting trials in red, the best thick."""
    shown = [r for r in rows if r.curves.get(GAP_ATTR)]
    if not shown:
        return None
    fig = go.Figure()
    legend: set[str] = set()
    for row in sorted(shown, key=lambda r: (r.number == best, r.overfits)):  # best drawn last, on top
        group = "best trial" if row.number == best else ("overfits" if row.overfits else "does not overfit")
        colour = {"best trial": BLUE, "overfits": RED, "does not overfit": GREY}[group]
        gap = row.curves[GAP_ATTR]
        fig.add_scatter(
            x=list(range(len(gap))), y=gap, mode="lines", name=group, legendgroup=group,
            showlegend=group not in legend, line={"color": colour, "width": 3 if group == "best trial" else 1.2},
            opacity=1.0 if group != "does not overfit" else 0.6,
            hovertext=f"trial {row.number} ({row.state}): {group}", hoverinfo="text+y",
        )
        legend.add(group)
    n_over = sum(r.overfits for r in shown)
    fig.update_layout(**LAYOUT, title=f"Overfitting gap per epoch: {n_over} of {len(shown)} trials overfit")
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="val_loss - train_loss (eval mode)", zeroline=True)
    return fig


def best_number(study: optuna.Study) -> int | None:
    """Number of the study's best trial, the one ``export`` writes (see
    :func:`droptune.recommend.best_trial`), or None before any trial completes."""
    try:
        return best_trial(study).number
    except StudyError:
        return None


def _by_layer_type(study: optuna.Study, per_variable: dict[str, float]) -> dict[str, float]:
    """Sum the variables' importances per layer type (per variable where one sets several types)."""
    ranked = rank_trials(study)
    setters = _setters(ranked[0]) if ranked else None
    if setters is None:
        return per_variable
    types = site_types(ranked[0])
    sets: dict[str, set[str]] = {}
    for site, variable in setters.items():
        sets.setdefault(variable, set()).add(types.get(site, "?"))
    label = {variable: "/".join(sorted(kinds)) for variable, kinds in sets.items()}
    grouped: dict[str, float] = {}
    for variable, value in per_variable.items():
        key = label.get(variable, variable)
        grouped[key] = grouped.get(key, 0.0) + value
    return dict(sorted(grouped.items(), key=lambda kv: -kv[1]))


def _scale(values: Sequence[float | None]) -> str:
    """``log`` when positive values span more than a factor 5 (early epochs would flatten the rest)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 5:
        return "log"
    return "linear"


def _y_axis(values: Sequence[float | None]) -> dict[str, object]:
    """The y axis for ``values``: linear, or log with readable ticks (``0.2 0.5 1 2``).

    Plotly labels a log axis spanning less than a decade or two with bare mantissas
    (``2  3  5``) or with one label only; explicit 1-2-5 ticks read as the values they are.

    Example:
        >>> _y_axis([0.1, 2.0])["ticktext"]
        ['0.1', '0.2', '0.5', '1', '2']
        >>> _y_axis([0.5, 0.6])
        {'type': 'linear'}
    """
    if _scale(values) == "linear":
        return {"type": "linear"}
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low, high = min(finite), max(finite)
    ticks: list[float] = []
    for steps in ((1, 2, 5), (1, 2, 3, 5, 7), tuple(range(1, 10))):
        decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        ticks = [float(f"{m}e{d}") for d in decades for m in steps if low / 1.05 <= m * 10.0**d <= high * 1.05]
        if len(ticks) >= 4:
            break
    return {"type": "log", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _gap_target(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.user_attrs[GAP_ATTR])


def _top(rows: Sequence[TrialRow], layer_type: str) -> float:
    values = [r.rates[layer_type] for r in rows if layer_type in r.rates]
    return max([0.05, *values])


def _hover(row: TrialRow) -> str:
    rates = ", ".join(f"{t} {v:.3f}" for t, v in row.rates.items())
    gap = "" if row.gap is None else f", gap {row.gap:.4g}"
    return f"trial {row.number}: {row.value:.5g}{gap}<br>{rates}"
