"""How trials train: the executor protocol, the registry the scheduler looks executors up in, and
the trial start every executor shares.

- ``fit``: one Lightning ``Trainer.fit`` per trial (:class:`~droptune.tuning.executors.FitExecutor`);
- ``packed``: K trials trained at once as one vectorised population
  (:class:`~droptune.tuning.executors.PackedExecutor`), refilled as members finish;
- ``auto`` (``search.pack: auto``): K from a memory probe of the worker's GPU
  (:func:`~droptune.packing.resolve_pack`), then ``packed``, or ``fit`` when K is 1.

A study names its executor with ``search.executor``; left out, ``search.pack`` decides
(:func:`droptune.config.pack_mode`). Adding an executor is a module with a class that follows
:class:`Executor` and one line in :data:`EXECUTORS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import lightning.pytorch as pl
import optuna

from droptune.config import StudySpec, pack_mode
from droptune.exceptions import ConfigError
from droptune.record import TrialResult, trial_seed
from droptune.stores._journal import write_batch
from droptune.tuning._build import build, build_model, model_sites

if TYPE_CHECKING:
    from droptune.sites import DropoutSite
    from droptune.space import SearchSpace
    from droptune.tuning._recorder import TrialRecorder


class Executor(Protocol):
    """How trials train. ``capacity`` trials at most run at once.

    Built as ``factory(spec, space, recorder)`` from :data:`EXECUTORS`, once per worker.
    """

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


ExecutorFactory = Callable[["StudySpec", "SearchSpace", "TrialRecorder"], Executor]


def _lazy(module: str, name: str) -> ExecutorFactory:
    """A factory loaded on first use: the packed executor needs torch.func and the packing machinery."""

    def factory(spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> Executor:
        made: Executor = getattr(importlib.import_module(module), name)(spec, space, recorder)
        return made

    return factory


EXECUTORS: dict[str, ExecutorFactory] = {
    "fit": _lazy("droptune.tuning.executors._fit", "FitExecutor"),
    "packed": _lazy("droptune.tuning.executors._packed", "packed_executor"),
    "auto": _lazy("droptune.tuning.executors._packed", "auto_executor"),
}

# What search.pack asks for, when search.executor does not name an executor.
_BY_PACK_MODE = {"unpacked": "fit", "packed": "packed", "auto": "auto"}


def executor_kind(spec: StudySpec) -> str:
    """The key of :data:`EXECUTORS` that runs ``spec``'s trials.

    Raises:
        ConfigError: If ``search.executor`` names no registered executor (raised before any
            trial starts: :func:`droptune.tuning.prepare_study` asks first).
    """
    kind = spec.search.executor or _BY_PACK_MODE[pack_mode(spec.search)]
    if kind not in EXECUTORS:
        raise ConfigError(
            f"{spec.source or 'study'}: search.executor {kind!r} is not a registered executor; "
            f"choose one of: {', '.join(sorted(EXECUTORS))} (or leave it out: search.pack decides)."
        )
    return kind


def make_executor(spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> Executor:
    """The executor that runs ``spec``'s trials in this worker, looked up in :data:`EXECUTORS`."""
    return EXECUTORS[executor_kind(spec)](spec, space, recorder)


class StartedTrial(NamedTuple):
    """A trial after :func:`start_trial`: its seeded model (and data, when built), its rates.

    A tuple, to be unpacked at once: an executor frees a trial's model by dropping its names,
    and nothing else may keep it alive.
    """

    model: pl.LightningModule
    data: pl.LightningDataModule | None
    rates: dict[str, float]


def start_trial(
    trial: optuna.Trial,
    spec: StudySpec,
    space: SearchSpace,
    recorder: TrialRecorder,
    *,
    sites: Sequence[DropoutSite] | None = None,
    all_sites: Sequence[DropoutSite] | None = None,
    **extra: Any,
) -> StartedTrial:
    """Start a trial the same way in every executor: seed, build, suggest, open its record.

    The seed comes from the study's seed and the trial (a retried trial keeps its original's);
    the trial record gets the whole model's rates and types (sites left out by include/exclude
    keep their built rate), so that an export is complete however the trial trained.

    Args:
        trial: The trial, just asked.
        spec: The study.
        space: Its search space.
        recorder: Records the trial.
        sites: The tuned sites, when the executor knows them (a population's); by default the
            model and data are built and the sites discovered on them.
        all_sites: Every site of the model (default: discovered with ``sites``, else ``sites``).
        **extra: More start attributes (see :func:`droptune.record.start_attrs`).

    Returns:
        The built model (data too when ``sites`` was not given) and the suggested rates; the
        rates are not applied (a packed population holds them as tensors).
    """
    attrs = trial.storage.get_trial_user_attrs(trial._trial_id)
    pl.seed_everything(trial_seed(spec.seed, trial.number, attrs), workers=True, verbose=False)
    data: pl.LightningDataModule | None = None
    if sites is None:
        model, data = build(spec)
        all_sites = model_sites(spec, model, data)
        sites = space.select(list(all_sites))
    else:
        model = build_model(spec)
    with write_batch(trial.storage):  # the trial's parameters in one append
        rates = space.suggest(trial, list(sites))
    recorder.open_sites(trial, rates, sites, all_sites if all_sites is not None else sites, **extra)
    return StartedTrial(model=model, data=data, rates=rates)
