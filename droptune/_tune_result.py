"""What :func:`droptune.tune` returns: the study, its recommendation, and how both read in a notebook."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from droptune.exceptions import StudyError
from droptune.recommend import Caveat, Recommendation
from droptune.record import best_trial

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["TuneResult"]

_HEADERS = ("layer type", "recommended", "IQR", "best trial", "prior", "trials")


@dataclass(repr=False)
class TuneResult:
    """What :func:`droptune.tune` returns.

    Its ``repr`` (and, in Jupyter, its HTML) is the summary ``droptune tune`` prints: the
    trial counts, the best value and one row per layer type with the recommended rate and
    the best trial's.

    Attributes:
        study: The Optuna study (all its trials, resumed ones included).
        recommendations: The recommended rate per layer type, or None with too few trials.
        caveats: The warnings on that recommendation (see :func:`droptune.recommend.caveats`).
    """

    study: optuna.Study
    recommendations: list[Recommendation] | None
    caveats: list[Caveat] = field(default_factory=list)

    @property
    def recommended(self) -> dict[str, float]:
        """``{layer type: recommended rate}`` (empty with too few trials to recommend from)."""
        return {r.layer_type: r.recommended for r in self.recommendations or []}

    @property
    def best_trial(self) -> FrozenTrial | None:
        """The trial ``droptune export`` writes (None while no trial is complete)."""
        try:
            return best_trial(self.study)
        except StudyError:
            return None

    def __repr__(self) -> str:
        lines = [f"TuneResult({self._headline()})"]
        rows = self._rows()
        if rows:
            widths = [max(len(r[i]) for r in (_HEADERS, *rows)) for i in range(len(_HEADERS))]
            lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in (_HEADERS, *rows)]
        else:
            lines.append("  no recommendation yet: too few complete trials")
        lines += [f"  warning: {c}" for c in self.caveats]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = f"<p><b>droptune</b> {html.escape(self._headline())}</p>"
        rows = self._rows()
        if not rows:
            return head + "<p>No recommendation yet: too few complete trials.</p>"
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in _HEADERS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
        warnings = "".join(f"<li>{html.escape(str(c))}</li>" for c in self.caveats)
        return head + f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>" + (
            f"<ul>{warnings}</ul>" if warnings else ""
        )

    def _headline(self) -> str:
        states = [t.state for t in self.study.get_trials(deepcopy=False)]
        counts = (states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED), states.count(TrialState.FAIL))
        text = f"study {self.study.study_name!r}: {counts[0]} complete, {counts[1]} pruned, {counts[2]} failed"
        best = self.best_trial
        if best is not None and best.value is not None:
            metric = (self.study.metric_names or ["objective"])[0]
            text += f"; best {metric} {best.value:.4g} (trial {best.number})"
        return text

    def _rows(self) -> list[tuple[str, ...]]:
        return [
            (r.layer_type, f"{r.recommended:.3f}", f"{r.low:.3f}-{r.high:.3f}", f"{r.best:.3f}", f"{r.prior:.2f}",
             str(r.n_trials))
            for r in self.recommendations or []
        ]
