"""Plots of a study for its MLflow parent run, as PNG files (matplotlib, Agg backend).

Optuna's own matplotlib plots are used where they fit (optimisation history, importance);
the per-layer-type rate panels and the gap curves are read from droptune's trial
attributes, which Optuna's plots do not know about.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import optuna

from droptune.recommend._recommend import Recommendation
from droptune.record import PRIOR_ATTR, gap_curve, rank_trials, type_rates
from droptune.sites import LAYER_TYPES

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

N_BEST_CURVES = 3


def _pyplot() -> ModuleType:
    """pyplot on the Agg backend, unless the user's program already chose one."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rates_figure(
    study: optuna.Study,
    recommendations: Sequence[Recommendation] | None = None,
    *,
    metric: str = "objective",
    top: float = 0.2,
) -> Figure:
    """Rate against the objective, one panel per layer type; the top trials highlighted.

    The best trial is a star, the prior trial a diamond; the recommended rate and its
    interquartile range are drawn when ``recommendations`` are given.
    """
    plt = _pyplot()
    ranked = rank_trials(study)
    n_top = min(len(ranked), max(3, math.ceil(top * len(ranked))))
    types = sorted({t for trial in ranked for t in type_rates(trial)}, key=_type_order)
    recs = {r.layer_type: r for r in recommendations or ()}
    fig, axes = plt.subplots(1, max(len(types), 1), figsize=(4.2 * max(len(types), 1), 3.8), squeeze=False)
    for ax, layer_type in zip(axes[0], types):
        points = [(type_rates(t).get(layer_type), t.value, i, t) for i, t in enumerate(ranked)]
        points = [p for p in points if p[0] is not None]
        rest = [p for p in points if p[2] >= n_top]
        best = [p for p in points if p[2] < n_top]
        ax.scatter([p[0] for p in rest], [p[1] for p in rest], s=18, c="0.65", label="other trials")
        ax.scatter([p[0] for p in best], [p[1] for p in best], s=30, c="tab:blue", label=f"top {n_top} trials")
        if points and points[0][2] == 0:
            ax.scatter([points[0][0]], [points[0][1]], s=160, marker="*", c="tab:red", label="best trial", zorder=3)
        prior = [p for p in points if p[3].user_attrs.get(PRIOR_ATTR)]
        if prior:
            ax.scatter(
                [prior[0][0]], [prior[0][1]], s=80, marker="D", facecolors="none", edgecolors="k", label="prior trial"
            )
        title = layer_type
        if layer_type in recs:
            rec = recs[layer_type]
            ax.axvspan(rec.low, rec.high, color="tab:blue", alpha=0.12, label="IQR of the top trials")
            ax.axvline(rec.recommended, color="tab:blue", lw=1.5, label="recommended")
            ax.axvline(rec.prior, color="k", lw=1, ls="--", label="textbook prior")
            title += f": {rec.recommended:.2f} (IQR {rec.low:.2f}-{rec.high:.2f}, prior {rec.prior:.2f})"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("dropout rate")
        ax.set_ylabel(metric)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4) or 1, fontsize=8, frameon=False)
    fig.suptitle(f"{study.study_name}: rate against {metric} per layer type")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def history_figure(study: optuna.Study, *, metric: str = "objective") -> Figure:
    """Optuna's optimisation history."""
    plt = _pyplot()
    # Optuna's plots switch the global style to ggplot: keep that inside this figure.
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")  # "experimental" warnings of optuna.visualization.matplotlib
        ax = optuna.visualization.matplotlib.plot_optimization_history(study, target_name=metric)
    fig = _figure_of(ax)
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    return fig


def importance_figure(study: optuna.Study) -> Figure:
    """Optuna's hyperparameter importance plot (one bar per Optuna variable)."""
    plt = _pyplot()
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore")
        ax = optuna.visualization.matplotlib.plot_param_importances(study)
    fig = _figure_of(ax)
    fig.set_size_inches(7, 1.5 + 0.4 * len(ax.patches))
    fig.tight_layout()
    return fig


def gap_figure(study: optuna.Study, *, n_best: int = N_BEST_CURVES) -> Figure:
    """The overfitting gap per epoch of the best ``n_best`` trials against the prior trial."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ranked = rank_trials(study)
    prior = next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(PRIOR_ATTR)), None)
    shown = [t for t in ranked if prior is None or t.number != prior.number][:n_best]
    for trial in shown:
        gap = gap_curve(trial)
        ax.plot(range(len(gap)), gap, marker="o", ms=3, label=f"trial {trial.number} ({trial.value:.4g})")
    if prior is not None:
        gap = gap_curve(prior)
        value = f"{prior.value:.4g}" if prior.value is not None else prior.state.name.lower()
        best = " (best)" if ranked and ranked[0].number == prior.number else ""
        ax.plot(range(len(gap)), gap, color="k", ls="--", lw=2, label=f"prior, trial {prior.number} ({value}){best}")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("overfit_gap = val_loss - train_loss (eval mode)")
    ax.set_title(f"{study.study_name}: overfitting gap of the best trials and the prior", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_plots(
    study: optuna.Study,
    folder: str | Path,
    *,
    recommendations: Sequence[Recommendation] | None = None,
    metric: str = "objective",
    top: float = 0.2,
    importance: bool = True,
) -> tuple[list[Path], list[str]]:
    """Write the study's plots as PNG files into ``folder``.

    A plot that cannot be drawn (a study too small for it) is left out with a note rather
    than stopping the others.

    Returns:
        The files written and the notes on the plots left out.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable[[], Figure]] = {
        "rates_by_layer_type.png": lambda: rates_figure(study, recommendations, metric=metric, top=top),
        "optimization_history.png": lambda: history_figure(study, metric=metric),
        "gap_curves.png": lambda: gap_figure(study),
    }
    if importance:
        makers["importance.png"] = lambda: importance_figure(study)
    plt = _pyplot()
    written, notes = [], []
    for name, make in makers.items():
        try:
            fig = make()
        except Exception as err:  # a plot is a nice-to-have: never let it stop the study
            log.debug("plot %s failed", name, exc_info=True)
            notes.append(f"plot {name} left out: {type(err).__name__}: {err}")
            continue
        try:
            fig.savefig(folder / name, dpi=110)
            written.append(folder / name)
        finally:
            plt.close(fig)
    return written, notes


def _type_order(layer_type: str) -> tuple[int, str]:
    return (LAYER_TYPES.index(layer_type) if layer_type in LAYER_TYPES else len(LAYER_TYPES), layer_type)


def _figure_of(ax: Axes) -> Figure:
    fig = ax.get_figure(root=True)
    if fig is None:  # an Axes made by pyplot always has one
        raise RuntimeError("the plot has no figure")
    return fig  # type: ignore[return-value]
