"""One trial: build, discover, suggest, apply, fit with droptune's callbacks, record."""

from __future__ import annotations

import gc
import logging
import math
import traceback
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import lightning.pytorch as pl
import optuna
import torch
from lightning.pytorch.callbacks import EarlyStopping

from droptune.callbacks import GapCallback, PruningCallback
from droptune.config import StudySpec
from droptune.exceptions import DroptuneError
from droptune.sites import apply_rates
from droptune.space import SearchSpace
from droptune.tracking import MlflowTracker, TrackingCallback
from droptune.tuning._build import build, model_sites

log = logging.getLogger(__name__)

# Optuna user-attribute keys read back by recommend/export.
RATES_ATTR = "rates"
TYPES_ATTR = "layer_types"
TYPE_RATES_ATTR = "rates_by_type"
CURVE_ATTR = "curve"
# Every site of the model, tuned or not (include/exclude), in discover order: what export writes.
MODEL_RATES_ATTR = "model_rates"
MODEL_TYPES_ATTR = "model_layer_types"
REASON_ATTR = "fail_reason"
PRIOR_ATTR = "prior"


@dataclass
class TrialResult:
    """How a trial ended: ``state`` is ``complete``, ``pruned`` or ``failed``."""

    state: str
    value: float | None = None
    reason: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TrialContext:
    """What every trial of a study shares."""

    spec: StudySpec
    space: SearchSpace
    tracker: MlflowTracker
    parent_run_id: str


def run_trial(ctx: TrialContext, trial: optuna.Trial) -> TrialResult:
    """Train one configuration and return its outcome; the caller tells Optuna.

    A NaN/inf loss, CUDA running out of memory or an exception from the user's code fails
    the trial with the reason recorded (the study goes on); a DroptuneError (a study that
    cannot work at all) is re-raised after the trial's run is closed.
    """
    spec = ctx.spec
    pl.seed_everything(spec.seed + trial.number, workers=True, verbose=False)
    model, data = build(spec)
    all_sites = model_sites(spec, model, data)
    sites = ctx.space.select(all_sites)
    rates = ctx.space.suggest(trial, sites)
    apply_rates(model, rates)
    layer_types = {s.name: s.layer_type for s in sites}
    if len(sites) < len(all_sites):
        trial.set_user_attr(MODEL_RATES_ATTR, {s.name: rates.get(s.name, s.rate) for s in all_sites})
        trial.set_user_attr(MODEL_TYPES_ATTR, {s.name: s.layer_type for s in all_sites})
    by_type = rates_by_type(rates, layer_types)
    trial.set_user_attr(RATES_ATTR, rates)
    trial.set_user_attr(TYPES_ATTR, layer_types)
    trial.set_user_attr(TYPE_RATES_ATTR, by_type)
    params: dict[str, float | str] = {f"rate.{n}": round(r, 6) for n, r in rates.items()}
    params.update({f"type.{n}": t for n, t in layer_types.items()})
    run_id = ctx.tracker.start_trial(ctx.parent_run_id, trial.number, params)
    result = TrialResult(state="failed", reason="interrupted")
    try:
        result = _fit(ctx, trial, model, data, run_id)
        return result
    except torch.OutOfMemoryError as err:
        result = TrialResult(state="failed", reason=f"CUDA out of memory: {str(err).splitlines()[0]}")
        return result
    except DroptuneError as err:
        result = TrialResult(state="failed", reason=str(err))
        raise
    except Exception as err:  # the user's model or data failed: record why, go on
        log.debug("trial %d failed", trial.number, exc_info=True)
        result = TrialResult(state="failed", reason=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-3)}")
        return result
    finally:
        if result.reason:
            trial.set_user_attr(REASON_ATTR, result.reason[:2000])
        summary = _summary(result, spec.objective.metric, spec.objective.direction)
        ctx.tracker.end_trial(run_id, result.state, summary=summary, reason=result.reason)
        del model, data
        release_memory()


def _fit(
    ctx: TrialContext, trial: optuna.Trial, model: pl.LightningModule, data: pl.LightningDataModule, run_id: str
) -> TrialResult:
    spec, objective = ctx.spec, ctx.spec.objective
    gap = GapCallback(metrics=(objective.metric, "val_acc"), seed=spec.seed)
    pruning = PruningCallback(trial, gap, objective.metric)
    callbacks: list[pl.Callback] = [gap, pruning, TrackingCallback(ctx.tracker, run_id, gap)]
    if spec.trainer.early_stopping_patience:
        mode = "min" if objective.direction == "minimize" else "max"
        callbacks.append(EarlyStopping(objective.metric, patience=spec.trainer.early_stopping_patience, mode=mode))
    trainer = pl.Trainer(
        max_epochs=spec.trainer.max_epochs,
        accelerator=spec.trainer.accelerator,
        devices=spec.trainer.devices,
        precision=spec.trainer.precision,  # type: ignore[arg-type]
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*number of training batches.*")
        try:
            trainer.fit(model, datamodule=data)
        except SystemExit:
            # Lightning turns Ctrl-C into SystemExit(1) after its own clean-up; keep it a
            # KeyboardInterrupt so the worker records the trial and the CLI exits 130.
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
    history = gap.history
    curve = {k: [r.get(k, math.nan) for r in history] for k in ("overfit_gap", "val_loss", "train_loss_eval")}
    trial.set_user_attr(CURVE_ATTR, curve)
    if gap.non_finite:
        return TrialResult(state="failed", reason=gap.non_finite, history=history)
    if not history:
        return TrialResult(state="failed", reason="no validation epoch ran", history=history)
    best = best_record(history, objective.metric, objective.direction)
    trial.set_user_attr("best_epoch", int(best["epoch"]))
    trial.set_user_attr("overfit_gap", best["overfit_gap"])
    trial.set_user_attr("epochs", len(history))
    if objective.max_gap is not None:
        trial.set_constraint("overfit_gap", best["overfit_gap"] - objective.max_gap)
    if pruning.pruned_at is not None:
        return TrialResult(state="pruned", reason=f"pruned at epoch {pruning.pruned_at}", history=history)
    return TrialResult(state="complete", value=best[objective.metric], history=history)


def best_record(history: list[dict[str, float]], metric: str, direction: str) -> dict[str, float]:
    """The epoch record with the best ``metric`` (the trial's value is this, not the last epoch)."""
    sign = 1.0 if direction == "minimize" else -1.0
    return min(history, key=lambda r: sign * r[metric])


def rates_by_type(rates: Mapping[str, float], layer_types: Mapping[str, str]) -> dict[str, float]:
    """Mean rate per layer type."""
    groups: dict[str, list[float]] = {}
    for name, rate in rates.items():
        groups.setdefault(layer_types[name], []).append(rate)
    return {t: sum(v) / len(v) for t, v in groups.items()}


def release_memory() -> None:
    """Free what a finished trial left on the device before the next one starts."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _summary(result: TrialResult, metric: str, direction: str) -> dict[str, float]:
    finite = [r for r in result.history if math.isfinite(r.get(metric, math.nan))]
    if not finite:
        return {}
    best = best_record(finite, metric, direction)
    return {f"best_{metric}": best[metric], "best_epoch": best["epoch"], "best_overfit_gap": best["overfit_gap"]}
