"""Train the study's model on one batch and validate it on one, before any store exists.

What would otherwise surface only after the stores, the parent run and several failed
trials exist: init_args the classes refuse, a model with no dropout site to tune, a
``validation_step`` that never logs ``val_loss``, an ``objective.metric`` never logged, a
loss that is NaN from the first batch, a model packed training cannot take.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
from typing_extensions import override

from droptune.config import pack_mode
from droptune.exceptions import ConfigError, DroptuneError, StudyError
from droptune.record import GAP_METRICS

if TYPE_CHECKING:
    from droptune.config import StudySpec

__all__ = ["check_training"]


def check_training(spec: StudySpec) -> None:
    """Build the model and data, check the dropout sites, fit one training and one validation batch.

    Runs on the study's accelerator (Lightning's ``fast_dev_run=1``: no logger, no
    checkpoint, nothing written).

    Raises:
        ConfigError: If the classes refuse their ``init_args``, no dropout site is left to
            tune, or ``objective.metric`` / ``val_loss`` is never logged.
        StudyError: If the model's own code fails on the first batch, or a loss or metric
            is not finite.
        PackingError: If ``search.pack > 1`` and the model cannot be packed.
    """
    source = spec.source or "the study file"
    pl.seed_everything(spec.seed, verbose=False)
    from droptune.config import build

    model, data = build(spec)
    _check_sites(spec, model, data, source)
    if pack_mode(spec.search) == "packed":  # auto falls back to unpacked instead
        from droptune.packing import check_packable
        from droptune.packing._setup import resolve_loss

        check_packable(model)
        resolve_loss(spec.loss, model)
    probe = _LossProbe()
    trainer = pl.Trainer(
        fast_dev_run=1,
        accelerator=spec.trainer.accelerator,
        devices=spec.trainer.devices,
        precision=spec.trainer.precision,  # type: ignore[arg-type]
        callbacks=[probe],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    what = f"{spec.model.class_path} with {spec.data.class_path}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and batch counts: not for one batch
        try:
            trainer.fit(model, datamodule=data)
        except DroptuneError:
            raise
        except Exception as err:
            first = str(err).strip().splitlines()
            raise StudyError(
                f"{source}: pre-flight training of {what} on one batch failed: {type(err).__name__}: "
                f"{first[0] if first else ''}. Fix the model or data (run with --debug for the traceback); "
                "nothing was created."
            ) from err
    _check_loss(probe.loss, what, source)
    _check_validation_data(trainer, spec.data.class_path, source)
    _check_metrics(spec, trainer.callback_metrics, type(model).__name__, source)


def _check_sites(spec: StudySpec, model: pl.LightningModule, data: pl.LightningDataModule, source: str) -> None:
    from droptune.sites import discover
    from droptune.space import SearchSpace

    example = getattr(model, "example_input_array", None)
    if example is None:
        example = _first_input(data)
    sites = discover(model, example, layer_types=spec.search.layer_types)
    space = SearchSpace(
        granularity=spec.search.granularity, ranges=spec.search.ranges, include=spec.search.include,
        exclude=spec.search.exclude, coarse_trials=spec.search.coarse_trials,
    )
    try:
        space.select(sites)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _first_input(data: pl.LightningDataModule) -> Any:
    import torch

    data.prepare_data()
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    return batch[:2] if isinstance(batch, torch.Tensor) else None


def _check_loss(loss: float | None, what: str, source: str) -> None:
    if loss is not None and not math.isfinite(loss):
        raise StudyError(
            f"{source}: pre-flight: the training loss of {what} is {loss} on the first batch, before any dropout "
            "rate was tuned. Check the data, the learning rate and the loss; nothing was created."
        )


def _check_validation_data(trainer: pl.Trainer, data_name: str, source: str) -> None:
    """An empty validation set logs nothing: say so, rather than blame ``validation_step``."""
    if sum(trainer.num_val_batches or [0]) == 0:
        raise ConfigError(
            f"{source}: the validation set of {data_name} is empty (val_dataloader gives no batch), so no "
            "validation ever runs. droptune picks rates by their validation loss and measures the overfitting "
            "gap on it: give the data module a non-empty validation split."
        )


def _check_metrics(spec: StudySpec, logged: dict[str, Any], model_name: str, source: str) -> None:
    names = sorted(logged)
    found = f"it logs {', '.join(names)}" if names else "it logs nothing"
    for metric, key in (("val_loss", None), (spec.objective.metric, "objective.metric")):
        if metric in GAP_METRICS:  # droptune measures these itself, after each validation
            continue
        if metric not in logged:
            if key is None:
                raise ConfigError(
                    f"{source}: {model_name}.validation_step never logs 'val_loss' ({found}). droptune needs it for "
                    "the overfitting gap: add self.log('val_loss', loss) to validation_step."
                )
            raise ConfigError(
                f"{source}: objective.metric {metric!r} is never logged by {model_name} ({found}). Log it with "
                f"self.log({metric!r}, value) in validation_step, or set objective.metric to a logged metric."
            )
        value = float(logged[metric])
        if not math.isfinite(value):
            raise StudyError(
                f"{source}: pre-flight: {metric} is {value} after one training batch of {model_name}. Check the "
                "model's validation_step and data; nothing was created."
            )


class _LossProbe(pl.Callback):
    """Keeps the first training batch's loss."""

    def __init__(self) -> None:
        self.loss: float | None = None

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and self.loss is None:
            self.loss = float(loss.detach())
