"""What a packed population needs from the study file: device, precision, loss, metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from droptune.config import ClassSpec, TrainerSpec
from droptune.config._packed_tables import LOSSES, PRECISIONS
from droptune.exceptions import ConfigError, PackingError

log = logging.getLogger(__name__)

_CLASSIFICATION = (F.cross_entropy, F.nll_loss)
_CLASSIFICATION_MODULES = (nn.CrossEntropyLoss, nn.NLLLoss)


def resolve_device(trainer: TrainerSpec) -> torch.device:
    """The one device a packed worker trains on, from ``trainer.accelerator``.

    Raises:
        PackingError: If the accelerator is unknown or not present.
    """
    accelerator = trainer.accelerator.lower()
    if trainer.devices > 1:
        log.warning(
            "a packed worker trains on one device; trainer.devices=%d is ignored (start one worker per device).",
            trainer.devices,
        )
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise PackingError(
                f"trainer.accelerator is {trainer.accelerator!r} but no CUDA device is visible."
            )
        return torch.device("cuda")
    if accelerator == "cpu":
        return torch.device("cpu")
    raise PackingError(
        f"trainer.accelerator {trainer.accelerator!r} is not supported by packed training; use auto, cpu or gpu."
    )


def resolve_precision(precision: str) -> torch.dtype | None:
    """The autocast dtype for ``trainer.precision``.

    Raises:
        PackingError: For precisions packed training does not run (valid: :data:`PRECISIONS`).
    """
    if precision not in PRECISIONS:
        raise PackingError(
            f"trainer.precision {precision!r} is not supported by packed training; use one of: "
            f"{', '.join(PRECISIONS)}."
        )
    return PRECISIONS[precision]


def resolve_loss(name: str | None, model: nn.Module) -> tuple[Callable[..., torch.Tensor], bool]:
    """The loss a population trains with, and whether it is a classification loss.

    Args:
        name: The study file's ``loss``: ``cross_entropy``, ``mse`` or the dotted path of
            a loss function or of a loss class (built without arguments). None takes the
            model's ``loss_fn`` attribute (the built-in models have one).
        model: The model.

    Raises:
        PackingError: If neither the study file nor the model names a loss.
        ConfigError: If a dotted path does not import.
    """
    fn: Any
    if name is None:
        fn = getattr(model, "loss_fn", None)
        if fn is None:
            raise PackingError(
                f"packed training needs to know the loss of {type(model).__name__}: set `loss:` in the study "
                f"file ({' | '.join(LOSSES)} | a dotted path such as torch.nn.HuberLoss), or give the "
                "module a loss_fn(outputs, targets) attribute."
            )
    elif name in LOSSES:
        fn = LOSSES[name]
    elif "." in name:
        try:
            fn = ClassSpec(class_path=name).resolve()
        except ConfigError as err:
            raise ConfigError(f"loss: {err}") from None
        fn = fn() if isinstance(fn, type) else fn
    else:
        raise ConfigError(
            f"loss: {name!r} is not valid; choose one of: {', '.join(LOSSES)}, or a dotted path."
        )
    if not callable(fn):
        raise ConfigError(f"loss: {name or 'loss_fn'} is not callable; got {type(fn).__name__}.")
    classify = fn in _CLASSIFICATION or isinstance(fn, _CLASSIFICATION_MODULES)
    return fn, classify


def record_metrics(classify: bool) -> tuple[str, ...]:
    """Names of the metrics of each packed epoch record (the objective must be one)."""
    names = ("train_loss", "val_loss", "train_loss_eval", "overfit_gap")
    return names + ("val_acc",) if classify else names
