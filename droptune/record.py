"""The trial record: what a droptune trial writes to Optuna and MLflow, and how it is read back.

Every name a trial carries is defined here once: the Optuna user-attribute keys, the MLflow
params, metrics and tags, the run summary and the gap constraint. The engine writes a trial
through :func:`start_attrs`, :func:`run_params`, :func:`finish_attrs`, :func:`run_summary`
and :func:`gap_constraint`; recommend, export, benchmarks and tests read one back through
:func:`site_rates`, :func:`site_types`, :func:`type_rates`, :func:`model_rates`,
:func:`model_types` and :func:`gap_curve`. Which trials are best (:func:`rank_trials`,
:func:`best_trial`, :func:`complete_trials`, :func:`find_trial`) is decided here too, once, for
the engine (confirmation), recommend, export and the report.

Optuna user attributes stay scalar or short text (optuna-dashboard shows each in a table cell):
per-epoch losses live in MLflow (metrics :data:`EPOCH_METRICS`, step = epoch); the trial keeps
only its gap curve, for the report's plot, as short lines of 4-digit numbers separated by spaces,
:data:`CURVE_CHUNK` epochs each, under ``gap_curve.<first epoch>`` (:func:`curve_attrs`).
optuna-dashboard shows every attribute on one line that never wraps (its value box is
``white-space: nowrap``) and widens the whole trial page to the longest: the former ``curve``
JSON list made it 9,150 px wide, one ``gap_curve`` string of 30 epochs still 2,274 px. Both
older forms are still read (:func:`gap_curve`).

This module imports nothing heavy: code that only reads records need not import the engine.

Example:
    >>> rates, types = {"head.1": 0.2, "head.4": 0.4, "embed": 0.1}, {"head.1": "dense", "head.4": "dense", "embed": "input"}
    >>> rates_by_type(rates, types)
    {'dense': 0.30000000000000004, 'input': 0.1}
    >>> sorted(run_params(rates, types))[:3]
    ['rate.dense', 'rate.embed', 'rate.head.1']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from droptune.exceptions import StudyError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)

__all__ = [
    "best_trial",
    "complete_trials",
    "find_trial",
    "rank_trials",
    "BEST_EPOCH_ATTR",
    "CONFIRMED_ATTR",
    "CONFIRM_INDEX_ATTR",
    "CONFIRM_ORIGIN_ATTR",
    "CONFIRM_SEED_ATTR",
    "CURVE_ATTR",
    "EPOCHS_ATTR",
    "EPOCH_METRICS",
    "GAP_ATTR",
    "GAP_CURVE_ATTR",
    "GAP_CONSTRAINT",
    "MODEL_RATES_ATTR",
    "MODEL_TYPES_ATTR",
    "MODEL_SIZE_ATTR",
    "UNTUNED_ATTR",
    "N_CLASSES_ATTR",
    "PACK_ATTR",
    "PARENT_RUN_ATTR",
    "PARENT_TAG",
    "PRIOR_ATTR",
    "RATE_FAILURES",
    "failed_by_rates",
    "BASELINE_ATTR",
    "PROCESS_ATTR",
    "RATES_ATTR",
    "RATE_PARAM",
    "REASON_ATTR",
    "REASON_TAG",
    "ROLE_TAG",
    "RUN_STATUS",
    "SORT_KEY",
    "STATE_TAG",
    "STUDY_TAG",
    "TRIAL_TAG",
    "TYPES_ATTR",
    "TYPE_PARAM",
    "TYPE_RATES_ATTR",
    "TrialResult",
    "WORKER_ATTR",
    "best_record",
    "run_state",
    "confirmed_finalists",
    "finish_attrs",
    "gap_constraint",
    "CURVE_CHUNK",
    "curve_attrs",
    "decode_curve",
    "encode_curve",
    "gap_curve",
    "model_rates",
    "model_types",
    "outcome",
    "parent_sort_key",
    "rates_by_type",
    "run_params",
    "run_summary",
    "site_rates",
    "site_types",
    "start_attrs",
    "trial_seed",
    "type_rates",
]

# --- Optuna user attributes of a trial -------------------------------------------------------
RATES_ATTR = "rates"  # {site: rate} of the tuned sites
TYPES_ATTR = "layer_types"  # {site: layer type} of the tuned sites
TYPE_RATES_ATTR = "rates_by_type"  # {layer type: mean rate}
# Every site of the model, tuned or not (include/exclude), in discover order: what export
# writes. Set only when some sites are not tuned.
MODEL_RATES_ATTR = "model_rates"
MODEL_TYPES_ATTR = "model_layer_types"
# The gap per epoch, 4 significant digits: "gap_curve.00": "0.1 0.05 ...", "gap_curve.08": ... (see the
# module and curve_attrs). One "gap_curve" string of every epoch is what earlier studies hold; read only.
GAP_CURVE_ATTR = "gap_curve"
CURVE_CHUNK = 8  # epochs per gap_curve.<n> attribute: ~90 characters at most, one line of the dashboard at 1280 px
CURVE_ATTR = "curve"  # {"overfit_gap": [one float per epoch]}: what older studies hold; read only
BEST_EPOCH_ATTR = "best_epoch"
GAP_ATTR = "overfit_gap"  # the gap at the best epoch
N_CLASSES_ATTR = "n_classes"  # study attribute: a classifier's number of classes (the chance check)
EPOCHS_ATTR = "epochs"
REASON_ATTR = "fail_reason"
PRIOR_ATTR = "prior"  # the enqueued textbook-prior trial
MODEL_SIZE_ATTR = "model_size"  # study: {"n_params": the tuned model's parameter count}
UNTUNED_ATTR = "untuned_sites"  # study: sites that never ran on the example input (not tuned, rate as built)
BASELINE_ATTR = "baseline"  # the enqueued no-dropout trial (every variable at its low end)
PACK_ATTR = "pack"  # size of the population a packed trial was trained in
# Optuna study attribute for `search.pack: auto`: {"pack": K, "reason": why, "worker": host:pid}
# as the last worker to resolve it chose.
PACK_AUTO_ATTR = "pack_auto"
WORKER_ATTR = "worker"  # "host:pid" of the process running the trial
PROCESS_ATTR = "worker_process"  # "pid-namespace:start-time" of that process
# Confirmation (droptune.tuning.confirm): trials of the derived study "<study>.confirm" carry
# the search trial they retrain and the seed they trained with; the search study then holds
# the finalists, best confirmed mean first: [{"trial", "n", "value_mean", "value_sd",
# "gap_mean", "gap_sd"}, ...] under CONFIRMED_ATTR (with the confirm study's name, seeds).
CONFIRM_ORIGIN_ATTR = "confirm_origin"
CONFIRM_INDEX_ATTR = "confirm_index"  # which retrain of its configuration (0 .. seeds-1)
CONFIRM_SEED_ATTR = "confirm_seed"
CONFIRMED_ATTR = "confirmed"
# Optuna study attribute: the MLflow parent run (its presence means "prepared, ready to join").
PARENT_RUN_ATTR = "mlflow_parent_run_id"
# Name of the Optuna trial constraint (best epoch's gap - max_gap; feasible when <= 0).
GAP_CONSTRAINT = "overfit_gap"
REASON_LIMIT = 2000  # characters of a failure reason kept as a user attribute

# --- MLflow ----------------------------------------------------------------------------------
RATE_PARAM = "rate."  # rate.<site> per site, rate.<layer type> per type
TYPE_PARAM = "type."  # type.<site>
# The metric droptune's saved MLflow view sorts by, ascending: a trial's objective value
# (negated when the study maximises, so the best trial has the lowest), and on the parent run
# an integer below every trial's (see parent_sort_key), so the study's row comes first. Not an
# objective: the values themselves are in best_<metric>. MLflow's view sorts on one key, and on
# a tie it lists the later-started run first, so the parent cannot share the best trial's value.
SORT_KEY = "sort_key"
# Per-epoch metrics (step = epoch): as trained, both losses in eval mode, and their gap.
EPOCH_METRICS = ("train_loss", "train_loss_eval", "val_loss", "val_acc", "overfit_gap")
# Computed by droptune's gap pass, not logged by the module: valid objectives all the same.
GAP_METRICS = ("train_loss_eval", "overfit_gap")
ROLE_TAG = "droptune.role"  # "study" (parent run) or "trial" (child run)
STUDY_TAG = "droptune.study"
TRIAL_TAG = "droptune.trial_number"
STATE_TAG = "droptune.state"  # running, complete, pruned, failed, interrupted (see run_state)
REASON_TAG = "droptune.reason"
PARENT_TAG = "mlflow.parentRunId"
# A trial's end state -> MLflow run status.
RUN_STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
# How the reason of a trial stopped by Ctrl-C or SIGTERM starts (droptune._signals.interrupt_reason).
INTERRUPTED_REASONS = ("interrupted by ", "terminated by SIGTERM")


def run_state(state: str, reason: str | None = None) -> str:
    """The :data:`STATE_TAG` of a run: the trial's state, or ``interrupted`` for a trial that
    failed only because its worker was stopped (Ctrl-C, SIGTERM), so it is redone on resume.

    Example:
        >>> run_state("failed", "interrupted by Ctrl-C or SIGINT (KeyboardInterrupt)"), run_state("failed", "NaN loss")
        ('interrupted', 'failed')
    """
    if state == "failed" and reason is not None and reason.startswith(INTERRUPTED_REASONS):
        return "interrupted"
    return state


@dataclass
class TrialResult:
    """How a trial ended: ``state`` is ``complete``, ``pruned`` or ``failed``.

    Attributes:
        state: ``complete``, ``pruned`` or ``failed``.
        value: The objective value (the best epoch's metric) of a complete trial.
        reason: Why it was pruned or failed.
        history: One record per epoch (``epoch`` and the :data:`EPOCH_METRICS` measured).
    """

    state: str
    value: float | None = None
    reason: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def best_record(history: Sequence[Mapping[str, float]], metric: str, direction: str) -> dict[str, float]:
    """The epoch record with the best ``metric`` (a trial's value is this, not the last epoch's).

    Example:
        >>> best_record([{"epoch": 0, "val_loss": 2.0}, {"epoch": 1, "val_loss": 1.5}], "val_loss", "minimize")
        {'epoch': 1, 'val_loss': 1.5}
    """
    sign = 1.0 if direction == "minimize" else -1.0
    return dict(min(history, key=lambda r: sign * r[metric]))


def rates_by_type(rates: Mapping[str, float], layer_types: Mapping[str, str]) -> dict[str, float]:
    """Mean rate per layer type (sites missing from ``layer_types`` count as ``dense``)."""
    groups: dict[str, list[float]] = {}
    for name, rate in rates.items():
        groups.setdefault(layer_types.get(name, "dense"), []).append(float(rate))
    return {t: sum(v) / len(v) for t, v in groups.items()}


def outcome(
    history: list[dict[str, float]],
    metric: str,
    direction: str,
    *,
    failed: str | None = None,
    pruned_at: int | None = None,
) -> TrialResult:
    """How a trial ended, from its epoch records: failed (with ``failed`` as the reason, or
    when no epoch ran), pruned at epoch ``pruned_at``, else complete with the best epoch's value.

    Example:
        >>> outcome([{"epoch": 0, "val_loss": 2.0}, {"epoch": 1, "val_loss": 1.5}], "val_loss", "minimize").value
        1.5
        >>> outcome([], "val_loss", "minimize").reason
        'no validation epoch ran'
    """
    if failed is not None:
        return TrialResult(state="failed", reason=failed, history=history)
    if not history:
        return TrialResult(state="failed", reason="no validation epoch ran", history=history)
    if pruned_at is not None:
        return TrialResult(state="pruned", reason=f"pruned at epoch {pruned_at}", history=history)
    return TrialResult(state="complete", value=best_record(history, metric, direction)[metric], history=history)


# Failure reasons that are a property of the rates tried, not of the user's code: a sampler
# should learn to avoid them (droptune.tuning._sampler).
RATE_FAILURES = ("non-finite", "CUDA out of memory", "out of memory")


def failed_by_rates(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed because of its rates (NaN or infinite loss, out of memory).

    Example:
        >>> from optuna.trial import TrialState, create_trial
        >>> failed_by_rates(create_trial(state=TrialState.FAIL, user_attrs={REASON_ATTR: "non-finite val_loss at epoch 3"}))
        True
        >>> failed_by_rates(create_trial(state=TrialState.FAIL, user_attrs={REASON_ATTR: "ValueError: bad shape"}))
        False
    """
    reason = trial.user_attrs.get(REASON_ATTR)
    return isinstance(reason, str) and reason.startswith(RATE_FAILURES)


def trial_seed(seed: int, number: int, attrs: Mapping[str, Any]) -> int:
    """The seed trial ``number`` of a study seeded ``seed`` trains with (both executors use it).

    ``seed + number``, except for a retrain of ``droptune confirm``, which carries its own
    (:data:`CONFIRM_SEED_ATTR`): the i-th retrain of every finalist shares one seed, so that
    finalists are compared on the same seeds (paired), not on luck. Pass the attributes as
    the storage holds them: an ``optuna.Trial``'s ``user_attrs`` is a copy made before its
    sampler set that seed.

    Example:
        >>> trial_seed(0, 12, {}), trial_seed(0, 12, {CONFIRM_SEED_ATTR: 1_000_004})
        (12, 1000004)
    """
    value = attrs.get(CONFIRM_SEED_ATTR)
    return int(value) if value is not None else seed + number


def start_attrs(
    rates: Mapping[str, float],
    layer_types: Mapping[str, str],
    *,
    model_rates: Mapping[str, float] | None = None,
    model_types: Mapping[str, str] | None = None,
    pack: int | None = None,
) -> dict[str, Any]:
    """The user attributes a trial sets once its rates are chosen, before it trains.

    Args:
        rates: ``{site: rate}`` of the tuned sites.
        layer_types: ``{site: layer type}`` of the tuned sites.
        model_rates: Every site's rate, when some sites are not tuned (else None).
        model_types: Every site's layer type, likewise.
        pack: Population size of a packed trial (None: trained alone).
    """
    attrs: dict[str, Any] = {
        RATES_ATTR: dict(rates),
        TYPES_ATTR: dict(layer_types),
        TYPE_RATES_ATTR: rates_by_type(rates, layer_types),
    }
    if model_rates is not None and model_types is not None and len(model_rates) > len(rates):
        attrs[MODEL_RATES_ATTR] = dict(model_rates)
        attrs[MODEL_TYPES_ATTR] = dict(model_types)
    if pack is not None:
        attrs[PACK_ATTR] = pack
    return attrs


def run_params(rates: Mapping[str, float], layer_types: Mapping[str, str]) -> dict[str, str]:
    """The MLflow params of a trial's child run.

    ``rate.<site>`` and ``type.<site>`` per site, and ``rate.<layer type>`` (the mean over
    that type's sites) per type; a type whose name is also a site's path gets
    ``rate.<layer type>.mean`` so that neither hides the other. A site name MLflow would
    refuse (``head(p)``) is escaped reversibly (:func:`droptune._mlflow_keys.mlflow_key`).
    """
    from droptune._mlflow_keys import mlflow_key

    params = {f"{RATE_PARAM}{mlflow_key(n)}": f"{round(float(r), 6)}" for n, r in rates.items()}
    params.update({f"{TYPE_PARAM}{mlflow_key(n)}": str(t) for n, t in layer_types.items()})
    for layer_type, rate in rates_by_type(rates, layer_types).items():
        key = f"{RATE_PARAM}{layer_type}"
        params[f"{key}.mean" if key in params else key] = f"{round(rate, 6)}"
    return params


def finish_attrs(result: TrialResult, metric: str, direction: str) -> dict[str, Any]:
    """The user attributes a trial sets once it has trained: gap curve, best epoch, reason.

    Example:
        >>> history = [{"epoch": 0, "val_loss": 1.0, "overfit_gap": 0.1}, {"epoch": 1, "val_loss": 0.9, "overfit_gap": 0.2}]
        >>> finish_attrs(TrialResult("complete", 0.9, history=history), "val_loss", "minimize")
        {'gap_curve.0': '0.1 0.2', 'best_epoch': 1, 'overfit_gap': 0.2, 'epochs': 2}
    """
    attrs: dict[str, Any] = curve_attrs([float(r.get(GAP_ATTR, math.nan)) for r in result.history])
    finite = _finite(result.history, metric)
    if finite and result.state != "failed":
        best = best_record(finite, metric, direction)
        attrs.update({BEST_EPOCH_ATTR: int(best["epoch"]), GAP_ATTR: best[GAP_ATTR], EPOCHS_ATTR: len(result.history)})
    if result.reason:  # why it failed, or where it was pruned
        attrs[REASON_ATTR] = result.reason[:REASON_LIMIT]
    return attrs


def gap_constraint(result: TrialResult, metric: str, direction: str, max_gap: float | None) -> float | None:
    """The :data:`GAP_CONSTRAINT` value (the best epoch's gap minus ``max_gap``), or None.

    None when the study sets no ``max_gap`` or the trial failed or has no finite epoch.
    """
    finite = _finite(result.history, metric)
    if max_gap is None or not finite or result.state == "failed":
        return None
    return best_record(finite, metric, direction)[GAP_ATTR] - max_gap


def run_summary(result: TrialResult, metric: str, direction: str) -> dict[str, float]:
    """The summary metrics of a trial's child run: ``best_<metric>``, ``best_epoch``, ``best_overfit_gap``
    and :data:`SORT_KEY` (``best_<metric>``, negated when the study maximises)."""
    finite = _finite(result.history, metric)
    if not finite:
        return {}
    best = best_record(finite, metric, direction)
    value = best[metric]
    return {
        f"best_{metric}": value, "best_epoch": best["epoch"], "best_overfit_gap": best[GAP_ATTR],
        SORT_KEY: -value if direction == "maximize" else value,
    }


def parent_sort_key(values: Iterable[float], direction: str) -> float:
    """The parent run's :data:`SORT_KEY`: an integer below every trial's, so it lists first.

    Args:
        values: Every objective value the trials reached (final and per epoch: a pruned or
            failed trial's key is its best epoch's); non-finite ones are ignored.
        direction: ``minimize`` or ``maximize``.

    Returns:
        The floor of the lowest key, minus 1: below every trial's, and a whole number so that
        it cannot be read as an objective value. -1.0 when there is no finite value.

    Example:
        >>> parent_sort_key([0.62, 0.8], "minimize"), parent_sort_key([0.95, 0.7], "maximize")
        (-1.0, -2.0)
    """
    keys = [-v if direction == "maximize" else v for v in values if math.isfinite(v)]
    return float(math.floor(min(keys, default=0.0)) - 1)


def _finite(history: Sequence[Mapping[str, float]], metric: str) -> list[Mapping[str, float]]:
    return [r for r in history if math.isfinite(r.get(metric, math.nan)) and GAP_ATTR in r]


# --- reading a trial back ---------------------------------------------------------------------
def site_rates(trial: FrozenTrial) -> dict[str, float]:
    """``{site name: rate}`` of a trial's tuned sites."""
    return {str(k): float(v) for k, v in trial.user_attrs.get(RATES_ATTR, {}).items()}


def site_types(trial: FrozenTrial) -> dict[str, str]:
    """``{site name: layer type}`` of a trial's tuned sites."""
    return {str(k): str(v) for k, v in trial.user_attrs.get(TYPES_ATTR, {}).items()}


def type_rates(trial: FrozenTrial) -> dict[str, float]:
    """``{layer type: rate}`` of a trial (the mean over its sites with granularity ``site``).

    Read from :data:`TYPE_RATES_ATTR`; a trial without it falls back to the mean of its
    site rates per type.
    """
    by_type = trial.user_attrs.get(TYPE_RATES_ATTR)
    if isinstance(by_type, dict):
        return {str(k): float(v) for k, v in by_type.items()}
    return rates_by_type(site_rates(trial), site_types(trial))


def model_rates(trial: FrozenTrial) -> dict[str, float]:
    """Every site's rate (tuned or not): what an exported config holds."""
    return {str(k): float(v) for k, v in (trial.user_attrs.get(MODEL_RATES_ATTR) or site_rates(trial)).items()}


def model_types(trial: FrozenTrial) -> dict[str, str]:
    """Every site's layer type (tuned or not)."""
    return {str(k): str(v) for k, v in (trial.user_attrs.get(MODEL_TYPES_ATTR) or site_types(trial)).items()}


def curve_attrs(values: Sequence[float]) -> dict[str, str]:
    """A gap curve as user attributes: :data:`CURVE_CHUNK` epochs of :func:`encode_curve` text each.

    The key is ``gap_curve.`` and the first epoch's index, zero-padded so that the keys sort
    by epoch where a viewer sorts them as text (optuna-dashboard does). No curve, no attribute.

    Example:
        >>> curve_attrs([0.5] * 10)
        {'gap_curve.0': '0.5 0.5 0.5 0.5 0.5 0.5 0.5 0.5', 'gap_curve.8': '0.5 0.5'}
    """
    width = len(str(max(len(values) - 1, 0)))
    return {
        f"{GAP_CURVE_ATTR}.{start:0{width}d}": encode_curve(values[start:start + CURVE_CHUNK])
        for start in range(0, len(values), CURVE_CHUNK)
    }


def gap_curve(trial: FrozenTrial) -> list[float]:
    """The trial's overfitting gap per epoch (empty if it recorded none); older records' forms too.

    Read from :func:`curve_attrs`' attributes in epoch order; else from one ``gap_curve``
    string of every epoch, else from the ``curve`` JSON list of the first studies.
    """
    attrs = trial.user_attrs
    prefix = f"{GAP_CURVE_ATTR}."
    chunks = sorted((int(k[len(prefix):]), v) for k, v in attrs.items() if k.startswith(prefix) and k[len(prefix):].isdigit())
    if chunks:
        return [value for _, text in chunks for value in decode_curve(str(text))]
    text = attrs.get(GAP_CURVE_ATTR)
    if isinstance(text, str):
        return decode_curve(text)
    legacy = trial.user_attrs.get(CURVE_ATTR)
    return [float(v) for v in (legacy.get(GAP_ATTR, []) if isinstance(legacy, Mapping) else [])]


def encode_curve(values: Sequence[float]) -> str:
    """A curve as short text: each value to 4 significant digits, separated by spaces.

    Example:
        >>> encode_curve([0.123456, -0.002, float("nan")])
        '0.1235 -0.002 nan'
        >>> decode_curve(encode_curve([0.5, 1e-05]))
        [0.5, 1e-05]
    """
    return " ".join(f"{float(v):.4g}" for v in values)


def decode_curve(text: str) -> list[float]:
    """The values of :func:`encode_curve`'s text."""
    return [float(v) for v in text.split()]


def confirmed_finalists(study_attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A search study's confirmed finalists, best confirmed mean first (empty if unconfirmed).

    Args:
        study_attrs: The search study's ``user_attrs``.

    Example:
        >>> confirmed_finalists({"confirmed": {"finalists": [{"trial": 4, "n": 5, "value_mean": 0.3}]}})[0]["trial"]
        4
        >>> confirmed_finalists({})
        []
    """
    found = study_attrs.get(CONFIRMED_ATTR) or {}
    return [dict(f) for f in found.get("finalists", []) if isinstance(f, Mapping) and f.get("n")]


def complete_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The study's complete trials with a finite value and droptune's rate attributes."""
    from optuna.trial import TrialState  # lazily: reading a record needs no Optuna

    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    usable = [t for t in trials if isinstance(t.user_attrs.get(RATES_ATTR), dict)]
    if len(usable) < len(trials):
        log.warning(
            "study %r: %d complete trials carry no %r user attribute (not run by droptune?) and are ignored.",
            study.study_name,
            len(trials) - len(usable),
            RATES_ATTR,
        )
    return usable


def rank_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Complete trials, best first: feasible ones (all constraints <= 0) before the others,
    then by value in the study's direction (Optuna's notion of the best trial)."""
    sign = 1.0 if study.direction.name == "MINIMIZE" else -1.0

    def key(trial: FrozenTrial) -> tuple[bool, float, int]:
        infeasible = any(c > 0.0 for c in trial.constraints.values())
        return infeasible, sign * float(trial.value), trial.number  # type: ignore[arg-type]

    return sorted(complete_trials(study), key=key)


def find_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """The complete trial ``number`` of a study, or a StudyError listing the valid ones."""
    trials = study.get_trials(deepcopy=False)
    found = next((t for t in trials if t.number == number), None)
    valid = [t.number for t in complete_trials(study)]
    shown = f"{valid[:30]}{' ...' if len(valid) > 30 else ''}" if valid else "none"
    if found is None:
        raise StudyError(
            f"study {study.study_name!r} has no trial {number} (trials 0-{len(trials) - 1}); "
            f"complete trials: {shown}."
        )
    if found.number not in valid:
        raise StudyError(
            f"trial {number} of study {study.study_name!r} is {found.state.name}, not a complete "
            f"droptune trial with rates; complete trials: {shown}."
        )
    return found


def best_trial(study: optuna.Study) -> FrozenTrial:
    """The study's best complete trial (see :func:`rank_trials`).

    In a confirmed study (``droptune confirm``), the finalist with the best mean over fresh
    seeds, rather than the trial with the best single (and partly lucky) value.

    Raises:
        StudyError: If no trial is complete.
    """
    ranked = rank_trials(study)
    if not ranked:
        raise StudyError(
            f"study {study.study_name!r} has no complete trial yet; run `droptune tune` "
            "(or let its workers finish) first."
        )
    complete = {t.number: t for t in ranked}
    confirmed = [complete[f["trial"]] for f in confirmed_finalists(study.user_attrs) if f["trial"] in complete]
    return confirmed[0] if confirmed else ranked[0]
