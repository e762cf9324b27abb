"""``droptune.tune``: pass the model (a class, a factory or an instance) and the datamodule, or a study file.

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
import dataclasses
import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import optuna

from droptune.config import StudySpec, load_config, spec_from_dict
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
    study: StudySpec | str | os.PathLike[str] | None = None,
    /,
    *,
    model: type[pl.LightningModule] | Callable[..., pl.LightningModule] | pl.LightningModule | None = None,
    datamodule: pl.LightningDataModule | type[pl.LightningDataModule] | None = None,
    name: str | None = None,
    n_trials: int | None = None,
    **options: Any,
) -> TuneResult:
    """Run (or resume) a study in this process: ``droptune.tune``.

    Either pass the objects at hand (``model=``, ``datamodule=``, options as keywords), or a
    study file (or a loaded :class:`~droptune.config.StudySpec`): the YAML path is this same
    call, with the objects named by class paths.

    Args:
        study: A study file's path or a loaded spec; None to build the study from ``model``
            and ``datamodule``.
        model: A LightningModule class (built with ``model_args``), a function returning a
            fresh model, or a model instance (deep-copied for each trial).
        datamodule: A LightningDataModule instance (shared by the trials) or class.
        name: The study's name (default: the model's class name); the same name and
            stores resume the study.
        n_trials: Finished trials the study should hold (default 40, or the study file's;
            given with a study file, it overrides the file's as ``--n-trials`` does).
        **options: Anything a study file holds besides ``model`` and ``data``: ``search``,
            ``objective``, ``trainer`` (dicts), ``storage``, ``tracking_uri``, ``seed``,
            ``loss``; and ``model_args`` (keyword arguments for a model class or factory).

    Returns:
        The study, its recommendation and the caveats on it.

    Raises:
        ConfigError: If an option is invalid, more than one worker process is asked for, or
            both a study file and objects (or neither) are given.
    """
    spec = _spec(study, model=model, datamodule=datamodule, name=name, n_trials=n_trials, **options)
    from droptune.api import run_tune  # the engine imports MLflow and Lightning's trainer

    done = run_tune(spec)  # what `droptune tune` runs: search, then confirmation inside the budget
    try:
        items, _ = compute(done)
    except StudyError:
        return TuneResult(study=done, recommendations=None)
    return TuneResult(study=done, recommendations=items, caveats=caveats(done))


def _spec(study: StudySpec | str | os.PathLike[str] | None, *, n_trials: int | None, **given: Any) -> StudySpec:
    """The spec :func:`tune` runs: from a study file or spec, or from objects."""
    objects = {k: v for k, v in given.items() if v is not None}
    if study is None:
        if given.get("model") is None or given.get("datamodule") is None:
            raise ConfigError(
                "tune() needs a study file (or a loaded StudySpec), or model= and datamodule=; "
                f"got {'neither' if not objects else ', '.join(sorted(objects)) + ' only'}."
            )
        return study_spec(n_trials=40 if n_trials is None else n_trials, **objects)
    if objects:
        raise ConfigError(
            f"tune(): a study file or StudySpec already names the model, data and options; got also "
            f"{', '.join(sorted(objects))}. Pass one or the other (n_trials= may override the file's)."
        )
    if isinstance(study, StudySpec):
        if n_trials is None:
            return study
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            raise ConfigError(f"tune(): n_trials must be an integer >= 1; got {n_trials!r}.")
        return dataclasses.replace(study, search=dataclasses.replace(study.search, n_trials=n_trials))
    return load_config(study, {"n_trials": n_trials})


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
