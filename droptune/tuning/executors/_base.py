"""How trials train: the executor protocol, and the registry the scheduler looks executors up in.

- ``fit``: one Lightning ``Trainer.fit`` per trial (:class:`~droptune.tuning.executors.FitExecutor`);
- ``packed``: K trials trained at once as one vectorised population
  (:class:`~droptune.tuning.executors.PackedExecutor`), refilled as members finish;
- ``auto`` (``search.pack: auto``): K from a memory probe of the worker's GPU
  (:func:`~droptune.packing.resolve_pack`), then ``packed``, or ``fit`` when K is 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import optuna

from droptune.config import StudySpec
from droptune.record import PACK_AUTO_ATTR, TrialResult
from droptune.space import SearchSpace
from droptune.tuning._build import build, model_sites
from droptune.tuning._heartbeat import worker_id
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning.executors._fit import FitExecutor

log = logging.getLogger(__name__)


class Executor(Protocol):
    """How trials train. ``capacity`` trials at most run at once."""

    capacity: int

    def running(self) -> list[optuna.Trial]:
        """The trials started and not yet handed back."""
        ...

    def start(self, trials: list[optuna.Trial]) -> None:
        """Take new trials (at most ``capacity`` minus those running)."""
        ...

    def step(self) -> list[tuple[optuna.Trial, TrialResult]]:
        """Train a while (a whole trial, or one epoch of a population); return the trials that ended."""
        ...

    def close(self) -> None:
        """Release what the executor holds (device memory)."""
        ...


def _packed(spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> Executor:
    from droptune.tuning.executors._packed import PackedExecutor  # only packed studies need torch.func

    model, data = build(spec)
    all_sites = model_sites(spec, model, data)
    return PackedExecutor(spec=spec, space=space, recorder=recorder, template=model, datamodule=data,
                          sites=space.select(all_sites), all_sites=all_sites)


def _auto(spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> Executor:
    """``search.pack: auto``: probe this worker's device, say what it chose, then build that executor."""
    from droptune.packing import resolve_pack  # the probe needs torch.func only on a GPU

    model, data = build(spec)
    pack, reason = resolve_pack(spec, model, data, space.select(model_sites(spec, model, data)))
    log.info("search.pack auto: %d trial%s at once (%s)", pack, "" if pack == 1 else "s", reason)
    recorder.study.set_user_attr(PACK_AUTO_ATTR, {"pack": pack, "reason": reason, "worker": worker_id()})
    resolved = replace(spec, search=replace(spec.search, pack=pack))
    return EXECUTORS[executor_kind(resolved)](resolved, space, recorder)


EXECUTORS: dict[str, Callable[[StudySpec, SearchSpace, TrialRecorder], Executor]] = {
    "fit": FitExecutor,
    "packed": _packed,
    "auto": _auto,
}


def executor_kind(spec: StudySpec) -> str:
    """The key of :data:`EXECUTORS` that runs ``spec``'s trials."""
    if spec.search.pack == "auto":
        return "auto"
    return "packed" if spec.search.pack > 1 else "fit"
