"""How sure a recommendation is: what it is drawn from, and the warnings that go with it.

Each check reads only what a droptune trial records in Optuna (value, the objective per
epoch reported for pruning, gap and best epoch, rates); a check whose data is missing
says nothing rather than guessing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from droptune.recommend._coverage import few_trials, range_edges
from droptune.recommend._recommend import MIN_TRIALS, _setters, n_kept
from droptune.record import (
    BEST_EPOCH_ATTR,
    EPOCHS_ATTR,
    GAP_ATTR,
    N_CLASSES_ATTR,
    best_trial,
    rank_trials,
    site_rates,
    site_types,
)

# A value this close (relative) to ln(n_classes) is a uniform guess.
CHANCE_TOLERANCE = 0.02
# Classes tried when the study does not record its number (a uniform guess over k classes).
GUESSED_CLASSES = range(2, 101)
# Share of complete trials whose best epoch is their last above which the study is under-trained.
UNDER_TRAINED_SHARE = 0.5
# Fewer complete trials than this, and more pruned ones: the recommendation rests on a handful.
FEW_COMPLETE = 10
# A best epoch within the last 5 % of a trial's epochs (at least its last) counts as "at the end".
LAST_EPOCHS_SHARE = 0.05


@dataclass(frozen=True)
class Caveat:
    """One warning about a recommendation.

    Attributes:
        kind: ``few_trials``, ``range_edge``, ``all_trials``, ``noise``, ``chance``, ``under_trained``,
            ``site_mean`` or ``pruned``.
        study: The study it is about.
        message: What was found, what it means and what to do, in words.
    """

    kind: str
    study: str
    message: str

    def __str__(self) -> str:
        return f"study {self.study!r}: {self.message}"


def basis(studies: Sequence[optuna.Study], *, top: float = 0.2) -> str:
    """What the recommendation is drawn from, e.g. ``from the best 3 of 11 complete trials``.

    Several studies are listed one by one (``... of 'a'; the best 4 of 20 of 'b'``).
    """
    parts = []
    for study in studies:
        n = len(rank_trials(study))
        parts.append(f"the best {n_kept(n, top)} of {n} complete trials")
    if len(studies) == 1:
        return f"from {parts[0]}"
    return "from " + "; ".join(f"{p} of {s.study_name!r}" for p, s in zip(parts, studies))


def caveats(
    studies: optuna.Study | Sequence[optuna.Study], *, top: float = 0.2, n_classes: int | None = None
) -> list[Caveat]:
    """The warnings that apply to a recommendation drawn from ``studies``.

    Args:
        studies: One study or several.
        top: The fraction of each study's complete trials the recommendation uses.
        n_classes: Classes of a classifier, for the chance check; default the study's
            ``n_classes`` user attribute, else guessed from the losses (see :func:`_chance`).

    Returns:
        One :class:`Caveat` per finding, in the order the checks run.
    """
    studies = [studies] if isinstance(studies, optuna.Study) else list(studies)
    found: list[Caveat] = []
    for study in studies:
        ranked = rank_trials(study)
        if not ranked:
            continue
        name = study.study_name
        checks = (
            few_trials(ranked),
            range_edges(ranked[: n_kept(len(ranked), top)]),
            _all_trials(ranked, top),
            _noise(ranked),
            _chance(study, ranked, n_classes or _int(study.user_attrs.get(N_CLASSES_ATTR))),
            _under_trained(ranked),
            _site_mean(best_trial(study)),  # the trial export writes
            _pruned(study, ranked),
        )
        found += [Caveat(kind, name, message) for kind, message in (c for c in checks if c)]
    return found


def _pruned(study: optuna.Study, ranked: list[FrozenTrial]) -> tuple[str, str] | None:
    """Pruning ate most trials: the recommendation rests on a handful of complete ones."""
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    if len(ranked) >= FEW_COMPLETE or pruned <= len(ranked):
        return None
    return "pruned", (
        f"the pruner stopped {pruned} of {pruned + len(ranked)} finished trials early, so the recommendation "
        f"rests on only {len(ranked)} complete trials (the prior and the first random ones weigh the most). "
        "Pruned trials are judged on their first epochs, before dropout shows its worth: run more trials, "
        "or set search.pruner: none."
    )


def _all_trials(ranked: list[FrozenTrial], top: float) -> tuple[str, str] | None:
    n = len(ranked)
    if top >= 1.0 or n_kept(n, top) < n:
        return None
    wanted = math.ceil(MIN_TRIALS / top)
    return "all_trials", (
        f"the top {top:.0%} of {n} complete trials is fewer than {MIN_TRIALS}, so the recommendation is the "
        f"median of all {n} of them, good and bad alike. Run at least {wanted} trials for the top {top:.0%} "
        "to mean the best ones."
    )


def _noise(ranked: list[FrozenTrial]) -> tuple[str, str] | None:
    """The best trial beats the median trial by less than the objective's epoch-to-epoch jitter."""
    if len(ranked) < MIN_TRIALS:
        return None
    values = [float(t.value) for t in ranked]  # type: ignore[arg-type]
    edge = abs(float(np.median(values)) - values[0])
    jitter = _jitter(ranked)
    if jitter is not None:
        if edge >= jitter:
            return None
        floor = f"the epoch-to-epoch noise of the objective within a trial ({jitter:.3g})"
    elif edge >= 1e-3 * abs(values[0]):
        return None
    else:
        floor = "0.1 % of its value"
    return "noise", (
        f"trial values are within noise of each other: the best trial ({values[0]:.4g}) beats the median trial "
        f"by {edge:.3g}, less than {floor}. Which trials rank on top, and so the rates, is largely chance: "
        "the rates matter little here, or more validation data (or epochs) is needed to tell them apart."
    )


def _jitter(ranked: list[FrozenTrial]) -> float | None:
    """The objective's epoch-to-epoch noise: a typical deviation of one epoch's value from the trend.

    Read from the values each trial reported per epoch (Optuna's intermediate values), in
    the second half of training. Second differences cancel a steady (linear) trend, so a
    curve still falling is not taken for noise: for white noise of deviation s around a
    line, the median |second difference| is about 0.6745 * sqrt(6) * s. The median over
    trials is returned.
    """
    per_trial = []
    for trial in ranked:
        curve = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
        late = [v for v in curve[len(curve) // 2 :] if math.isfinite(v)]
        if len(late) >= 4:
            per_trial.append(float(np.median(np.abs(np.diff(late, n=2)))) / (0.6745 * math.sqrt(6.0)))
    return float(np.median(per_trial)) if per_trial else None


def _chance(study: optuna.Study, ranked: list[FrozenTrial], n_classes: int | None) -> tuple[str, str] | None:
    """The best trial's validation loss is that of a uniform guess, ln(n_classes).

    Only for a minimised loss (the study's metric name, where set, says ``loss``). Without
    ``n_classes``, a guess: the best epoch's validation loss and its training loss (eval
    mode: the validation loss minus the gap) are both within 2 % of ln(k) for one k in
    2..100, i.e. the model learned nothing, on either set.
    """
    names = getattr(study, "metric_names", None)
    best = ranked[0]
    if study.direction != optuna.study.StudyDirection.MINIMIZE or (names and "loss" not in names[0]):
        return None
    loss = float(best.value)  # type: ignore[arg-type]

    def near(k: int, *values: float) -> bool:
        return all(abs(v - math.log(k)) <= CHANCE_TOLERANCE * math.log(k) for v in values)

    if n_classes is not None:
        if n_classes < 2 or not near(n_classes, loss):
            return None
        k = n_classes
    else:
        gap = best.user_attrs.get(GAP_ATTR)
        if not isinstance(gap, (int, float)):
            return None
        candidates = [c for c in GUESSED_CLASSES if near(c, loss, loss - float(gap))]
        if not candidates:
            return None
        k = min(candidates, key=lambda c: abs(loss - math.log(c)))
    return "chance", (
        f"the best trial's validation loss {loss:.4f} is that of a uniform guess over {k} classes "
        f"(ln {k} = {math.log(k):.4f}): no trial learned anything, and the rates recommended are noise. "
        "Check the model, the data and the learning rate before tuning dropout."
    )


def _under_trained(ranked: list[FrozenTrial]) -> tuple[str, str] | None:
    recorded = [
        t for t in ranked
        if isinstance(t.user_attrs.get(BEST_EPOCH_ATTR), int) and isinstance(t.user_attrs.get(EPOCHS_ATTR), int)
    ]
    if not recorded:
        return None
    at_end = [t for t in recorded if t.user_attrs[BEST_EPOCH_ATTR] >= _last_epochs(t.user_attrs[EPOCHS_ATTR])]
    if len(at_end) <= UNDER_TRAINED_SHARE * len(recorded):
        return None
    longest = max(t.user_attrs[EPOCHS_ATTR] for t in recorded)
    return "under_trained", (
        f"{len(at_end)} of {len(recorded)} complete trials had their best epoch at or near their last one "
        f"(at most {longest} epochs): they were still improving when training stopped, so dropout had little "
        f"chance to show its worth. Raise trainer.max_epochs (or --max-epochs) above {longest}."
    )


def _last_epochs(epochs: int) -> int:
    """First epoch of a trial's last 5 % (at least its last epoch): a best epoch there was still improving."""
    return epochs - max(1, math.ceil(LAST_EPOCHS_SHARE * epochs))


def _site_mean(best: FrozenTrial) -> tuple[str, str] | None:
    """A type whose sites have different rates in the best trial: its rate is their mean.

    Sites differ when each was tuned on its own (granularity ``site``) or when tied sites
    keep the model's own schedule (stochastic depth rising with depth).
    """
    rates = site_rates(best)
    groups: dict[str, list[str]] = {}
    for site, layer_type in site_types(best).items():
        if site in rates:
            groups.setdefault(layer_type, []).append(site)
    spread = {t: s for t, s in groups.items() if max(rates[x] for x in s) - min(rates[x] for x in s) > 1e-6}
    if not spread:
        return None
    setters = _setters(best)
    why = (
        "each site was tuned on its own (granularity site)"
        if setters is not None and all(site == variable for site, variable in setters.items())
        else "tied sites keep the model's own ratios"
    )
    listed = "; ".join(f"{t}: " + ", ".join(f"{x} {rates[x]:.3f}" for x in s) for t, s in spread.items())
    return "site_mean", (
        f"the sites of a layer type have different rates, as {why}: a type's rate is the mean of its sites' "
        f"rates (best trial: {listed}). `droptune recommend --by site` shows them one by one; `droptune export` "
        "writes them."
    )


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
