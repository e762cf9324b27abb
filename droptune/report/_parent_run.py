"""Log a study's recommendation, its caveats, plots and HTML report to its parent run.

Called once by the study's lifecycle when a study ends; it lives with the report (not in
recommend/) because it writes the report, and recommend/ must not import report/.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from droptune.exceptions import StudyError
from droptune.recommend import (
    Recommendation,
    basis,
    caveats,
    compute,
    recommendation_data,
    save_plots,
    variable_importances,
)
from droptune.record import best_trial
from droptune.report._write import write_report

if TYPE_CHECKING:
    from droptune.tracking import Tracker

log = logging.getLogger(__name__)

RECOMMENDATIONS_FILE = "recommendations.json"
NOTES_FILE = "recommendation_notes.txt"
PLOTS_DIR = "plots"
REPORT_FILE = "report.html"


def report_study(
    study: optuna.Study,
    tracker: Tracker,
    parent_run_id: str,
    *,
    metric: str = "objective",
    top: float = 0.2,
) -> list[Recommendation] | None:
    """Compute the study's recommendation and log it to its parent run.

    The parent run gets the recommendation as metrics (``recommended.<type>`` and its
    evidence) and as parameters rounded to 2 decimals (``recommended.dense = 0.23``), and a
    description (:func:`study_note`) that links to the report. Logs ``recommendations.json`` (the list ``droptune recommend --format json`` prints),
    ``report.html`` (what ``droptune report`` writes: one page, opens offline) and PNG plots
    under ``plots/``: rate against ``metric`` per layer type, the optimisation history,
    the importance and the gap curves. The caveats on the recommendation (and, for a study
    too small to recommend from, why there is none) go to ``recommendation_notes.txt``;
    nothing here raises, so a finished study is never failed by its report.

    Returns:
        The recommendations, or None when there are none.
    """
    try:
        items, notes = compute([study], top=top, by="type")
    except StudyError as err:
        items, notes = None, [str(err)]
    for note in notes:
        log.warning("%s", note)
    # Not logged: whoever shows the recommendation shows its caveats (the end of `tune` prints them).
    notes += [str(c) for c in caveats([study], top=top)] if items is not None else []
    if items is not None:
        try:  # where users land: the runs table shows these as the parent run's columns
            tracker.log_study_summary(parent_run_id, recommendation_metrics(items))
        except Exception as err:  # noqa: BLE001  (the study is done: never fail it here)
            log.warning("could not log the recommendation to MLflow run %s: %s", parent_run_id, err)
    if not tracker.keeps_artifacts:  # plots and the HTML page take seconds: not for a tracker that drops them
        return items
    report: str | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="droptune-report-") as tmp:
            folder = Path(tmp)
            if items is not None:
                path = folder / RECOMMENDATIONS_FILE
                path.write_text(json.dumps(recommendation_data(items), indent=2) + "\n")
                tracker.log_artifact(parent_run_id, path)
            importance, _ = variable_importances(study)
            plots, plot_notes = save_plots(
                study,
                folder / PLOTS_DIR,
                recommendations=items,
                metric=metric,
                top=top,
                importance=importance is not None,
            )
            for plot in plots:
                tracker.log_artifact(parent_run_id, plot, PLOTS_DIR)
            notes += plot_notes
            html_notes = _html_report(study, folder / REPORT_FILE, top, tracker, parent_run_id)
            report = None if html_notes else REPORT_FILE
            notes += html_notes
            if notes:
                path = folder / NOTES_FILE
                path.write_text("\n".join(notes) + "\n")
                tracker.log_artifact(parent_run_id, path)
    except Exception as err:  # noqa: BLE001  (MLflow unreachable, disk full...: the study is done)
        log.warning("could not log the recommendation to MLflow run %s: %s: %s", parent_run_id, type(err).__name__, err)
    try:
        params = recommendation_params(items or [])
        tracker.describe_study(parent_run_id, params=params, note=study_note(study, items, top=top), report=report)
    except Exception as err:  # noqa: BLE001  (the study is done: never fail it here)
        log.warning("could not describe MLflow run %s: %s: %s", parent_run_id, type(err).__name__, err)
    return items


def recommendation_params(items: list[Recommendation]) -> dict[str, str]:
    """The recommendation as parent-run parameters, rounded for the runs table: ``recommended.<type>``.

    Example:
        >>> rec = Recommendation("dense", 0.2333, 0.2, 0.3, 0.094, 0.5, 0.42, 3, ("fc.1",))
        >>> recommendation_params([rec])
        {'recommended.dense': '0.23'}
    """
    return {f"recommended.{rec.layer_type}": f"{rec.recommended:.2f}" for rec in items}


def study_note(study: optuna.Study, items: list[Recommendation] | None, *, top: float = 0.2) -> str:
    """The parent run's description (Markdown): the trials, the recommendation, the best trial's rates.

    Example:
        >>> from droptune.testing import add_trial
        >>> study = optuna.create_study(study_name="demo")
        >>> for value, rate in ((0.5, 0.1), (0.4, 0.3), (0.6, 0.2)):
        ...     add_trial(study, {"fc.1": rate}, value, layer_types={"fc.1": "dense"})
        >>> print(study_note(study, None))
        droptune study **demo**: 3 complete, 0 pruned, 0 failed trials. No recommendation yet.
    """
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {w}" for s, w in ((TrialState.COMPLETE, "complete"),
                                                             (TrialState.PRUNED, "pruned"), (TrialState.FAIL, "failed")))
    head = f"droptune study **{study.study_name}**: {counts} trials."
    if not items:
        return head + " No recommendation yet."
    best = best_trial(study)
    rows = [f"| {r.layer_type} | **{r.recommended:.2f}** | {r.low:.2f}-{r.high:.2f} | {r.best:.2f} |" for r in items]
    return "\n".join([
        head,
        "",
        f"Recommended dropout rate per layer type: the median {basis([study], top=top)}.",
        "",
        f"| layer type | recommended | IQR | best trial ({best.number}) |",
        "|---|---|---|---|",
        *rows,
        "",
        "`droptune export STUDY -o rates.yaml` writes the best trial's rates; add `--recommended` for the "
        "recommended ones on every site of their type.",
    ])


def recommendation_metrics(items: list[Recommendation]) -> dict[str, float]:
    """The recommendation as flat metrics of the parent run: ``recommended.<type>`` and its evidence.

    Example:
        >>> rec = Recommendation("dense", 0.31, 0.25, 0.36, 0.29, 0.5, 0.42, 3, ("fc.1",))
        >>> recommendation_metrics([rec])  # doctest: +NORMALIZE_WHITESPACE
        {'recommended.dense': 0.31, 'recommended.dense.iqr_low': 0.25, 'recommended.dense.iqr_high': 0.36,
         'recommended.dense.best': 0.29, 'recommended.dense.prior': 0.5, 'recommended.dense.n_trials': 3.0}
    """
    metrics: dict[str, float] = {}
    for rec in items:
        key = f"recommended.{rec.layer_type}"
        metrics[key] = rec.recommended
        metrics.update({
            f"{key}.iqr_low": rec.low, f"{key}.iqr_high": rec.high, f"{key}.best": rec.best,
            f"{key}.prior": rec.prior, f"{key}.n_trials": float(rec.n_trials),
        })
    return metrics


def _html_report(study: optuna.Study, path: Path, top: float, tracker: Tracker, run_id: str) -> list[str]:
    """Write and log the HTML report; a note instead if it cannot be made."""
    try:
        write_report(study, path, top=top)
    except Exception as err:  # noqa: BLE001  (the report is a nice-to-have: the study is done)
        log.debug("HTML report failed", exc_info=True)
        return [f"{REPORT_FILE} left out: {type(err).__name__}: {err}"]
    tracker.log_artifact(run_id, path)
    return []
