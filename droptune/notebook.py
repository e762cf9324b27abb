"""Tune from a notebook: pass the model (a class, a factory or an instance) and the datamodule.

A study file names its model and data by importable class paths, so that worker processes
and other machines can build them. In a notebook the objects are at hand: :func:`tune`
registers them in this process, builds the same study spec a YAML file would give (their
class paths point here) and runs it with the same stores, MLflow runs, resume and
recommendation as ``droptune tune``. Trials run in this process only: several worker
processes need a study file whose classes they can import.

Example:
    >>> from droptune.testing import TinyDataModule, TinyModule
    >>> spec = study_spec(model=TinyModule, datamodule=TinyDataModule(), name="nb", n_trials=2)
    >>> spec.model.class_path.startswith("droptune.notebook."), spec.search.n_trials
    (True, 2)
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import optuna

from droptune.config import StudySpec, spec_from_dict
from droptune.exceptions import ConfigError, StudyError
from droptune.recommend import Caveat, Recommendation, caveats, compute

__all__ = ["TuneResult", "study_spec", "tune"]

# Objects registered by tune(), reachable as droptune.notebook.<key> (see __getattr__).
_LIVE: dict[str, type] = {}
_COUNTER = itertools.count()


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes:
        study: The Optuna study (all its trials, resumed ones included).
        recommendations: The recommended rate per layer type, or None with too few trials.
        caveats: The warnings on that recommendation (see :func:`droptune.recommend.caveats`).
    """

    study: optuna.Study
    recommendations: list[Recommendation] | None
    caveats: list[Caveat] = field(default_factory=list)


def tune(
    *,
    model: type[pl.LightningModule] | Callable[..., pl.LightningModule] | pl.LightningModule,
    datamodule: pl.LightningDataModule | type[pl.LightningDataModule],
    name: str | None = None,
    n_trials: int = 40,
    **options: Any,
) -> TuneResult:
    """Run (or resume) a study of ``model`` on ``datamodule``, in this process.

    Args:
        model: A LightningModule class (built with ``model_args``), a function returning a
            fresh model, or a model instance (deep-copied for each trial).
        datamodule: A LightningDataModule instance (shared by the trials) or class.
        name: The study's name (default: the model's class name); the same name and
            stores resume the study.
        n_trials: Finished trials the study should hold.
        **options: Anything a study file holds besides ``model`` and ``data``: ``search``,
            ``objective``, ``trainer`` (dicts), ``storage``, ``tracking_uri``, ``seed``,
            ``loss``; and ``model_args`` (keyword arguments for a model class or factory).

    Returns:
        The study, its recommendation and the caveats on it.

    Raises:
        ConfigError: If an option is invalid, or more than one worker process is asked for.
    """
    spec = study_spec(model=model, datamodule=datamodule, name=name, n_trials=n_trials, **options)
    from droptune.tuning import tune as run  # the engine imports MLflow and Lightning's trainer

    study = run(spec)
    try:
        items, _ = compute(study)
    except StudyError:
        return TuneResult(study=study, recommendations=None)
    return TuneResult(study=study, recommendations=items, caveats=caveats(study))


def study_spec(
    *,
    model: Any,
    datamodule: Any,
    name: str | None = None,
    n_trials: int = 40,
    **options: Any,
) -> StudySpec:
    """The study spec :func:`tune` runs: what a study file would hold, objects registered here."""
    model_args = options.pop("model_args", {})
    search = dict(options.pop("search", {}) or {})
    search.setdefault("n_trials", n_trials)
    if search.get("workers", 1) != 1:
        raise ConfigError(
            "search.workers: a notebook study runs in this process only (workers: 1); for several worker "
            "processes, write a study file whose model and data classes they can import (`droptune tune FILE`)."
        )
    data: Mapping[str, Any] = {
        "name": name or _name_of(model),
        "model": {"class_path": _register(_model_class(model), "model"), "init_args": dict(model_args)},
        "data": {"class_path": _register(_data_class(datamodule), "data")},
        "search": search,
        **options,
    }
    return spec_from_dict(data)


def __getattr__(name: str) -> type:
    if name in _LIVE:
        return _LIVE[name]
    raise AttributeError(f"module 'droptune.notebook' has no attribute {name!r}")


def _register(cls: type, kind: str) -> str:
    key = f"{kind}_{next(_COUNTER)}"
    _LIVE[key] = cls
    return f"{__name__}.{key}"


def _model_class(model: Any) -> type:
    if isinstance(model, type) and issubclass(model, pl.LightningModule):
        return model
    if isinstance(model, pl.LightningModule):
        return _returning(lambda: copy.deepcopy(model), pl.LightningModule, type(model).__name__)
    if callable(model):
        return _returning(model, pl.LightningModule, getattr(model, "__name__", "factory"))
    raise ConfigError(f"model must be a LightningModule class, a function returning one, or one; got {model!r}.")


def _data_class(datamodule: Any) -> type:
    if isinstance(datamodule, type) and issubclass(datamodule, pl.LightningDataModule):
        return datamodule
    if isinstance(datamodule, pl.LightningDataModule):
        return _returning(lambda: datamodule, pl.LightningDataModule, type(datamodule).__name__)
    raise ConfigError(f"datamodule must be a LightningDataModule or its class; got {datamodule!r}.")


def _returning(make: Callable[..., Any], base: type, label: str) -> type:
    """A subclass of ``base`` whose "construction" calls ``make``: how a study spec (which
    names classes) carries a factory or an object."""

    def __new__(cls: type, **kwargs: Any) -> Any:  # noqa: N807
        built = make(**kwargs)
        if not isinstance(built, base):
            raise ConfigError(f"the model factory {label!r} returned {type(built).__name__}, not a {base.__name__}.")
        return built

    return type(f"Notebook{label}", (base,), {"__new__": __new__, "__module__": __name__})


def _name_of(model: Any) -> str:
    cls = model if isinstance(model, type) else type(model) if isinstance(model, pl.LightningModule) else None
    label = cls.__name__ if cls is not None else getattr(model, "__name__", "model")
    return "notebook-" + "".join(c if c.isalnum() else "-" for c in label).strip("-").lower()
