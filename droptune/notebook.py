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

import contextlib
import copy
import dataclasses
import datetime
import itertools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lightning.pytorch as pl
import optuna

from droptune._tune_result import TuneResult
from droptune.config import NO_TRACKING, StudySpec, load_config, spec_from_dict
from droptune.exceptions import ConfigError, StudyError
from droptune.recommend import caveats, compute

__all__ = ["TuneResult", "study_spec", "tune"]

log = logging.getLogger(__name__)
# Loggers whose INFO messages (GPU/TPU banners, tips, "Trainer.fit stopped", Optuna's own
# per-trial lines, MLflow's database set-up) tune() holds back unless verbose: droptune logs
# one line per trial instead.
_CHATTY = ("lightning.pytorch", "lightning.fabric", "optuna", "mlflow", "alembic")

# Objects registered by tune(), reachable as droptune.notebook.<key> (see __getattr__).
_LIVE: dict[str, type] = {}
_COUNTER = itertools.count()


def tune(
    study: StudySpec | str | os.PathLike[str] | None = None,
    /,
    *,
    model: type[pl.LightningModule] | Callable[..., pl.LightningModule] | pl.LightningModule | None = None,
    datamodule: pl.LightningDataModule | type[pl.LightningDataModule] | None = None,
    name: str | None = None,
    n_trials: int | None = None,
    verbose: bool = False,
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
            given with a study file, it overrides the file's as ``--n-trials`` does). It is
            the study's total: a resumed study runs only the difference.
        verbose: Also show Lightning's and Optuna's own messages (GPU/TPU banners, tips,
            Optuna's trial lines). By default each finished trial is one INFO line on the
            ``droptune.notebook`` logger (shown on stderr when logging is not configured).
        **options: Anything a study file holds besides ``model`` and ``data``: ``search``,
            ``objective``, ``trainer`` (dicts), ``storage``, ``tracking_uri``, ``seed``,
            ``loss``; and ``model_args`` (keyword arguments for a model class or factory).

    Returns:
        The study, its recommendation and the caveats on it; displayed in a notebook, a
        table of the recommended and the best trial's rate per layer type.

    Raises:
        ConfigError: If an option is invalid, more than one worker process is asked for, or
            both a study file and objects (or neither) are given.
    """
    spec = _spec(study, model=model, datamodule=datamodule, name=name, n_trials=n_trials, **options)
    from droptune.api import run_tune  # the engine imports MLflow and Lightning's trainer

    with _quiet(not verbose), _trial_lines(spec.objective.metric) as progress:
        done = run_tune(spec, progress=progress)  # what `droptune tune` runs: search, then confirmation
        try:
            items, _ = compute(done)
        except StudyError:
            result = TuneResult(study=done, recommendations=None)
        else:
            result = TuneResult(study=done, recommendations=items, caveats=caveats(done))
        log.info("%s", summary(spec, result))
    return result


def summary(spec: StudySpec, result: TuneResult) -> str:
    """What ``droptune tune`` prints at the end, as lines: counts, stores, the best trial, the
    confirmation and the recommended rate per layer type."""
    from droptune.recommend._confirmed import confirmed_note
    from droptune.record import best_trial
    from droptune.tuning import count_trials

    study = result.study
    counts = count_trials(study)
    lines = [
        f"study {spec.name}: {counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed",
        f"  Optuna store: {spec.storage}",
        f"  MLflow: {spec.tracking_uri}" + (" (browse it with `droptune ui --tracking-uri ...`)"
                                            if spec.tracking_uri != NO_TRACKING else ""),
    ]
    if counts.complete:
        best = best_trial(study)
        lines.append(f"  best {spec.objective.metric}: {best.value:.5g} (trial {best.number})")
        note = confirmed_note(study)
        if note:
            lines.append(f"  {note}")
    if result.recommended:
        rates = ", ".join(f"{kind} {rate:.2f}" for kind, rate in result.recommended.items())
        lines.append(f"  recommended rates per layer type: {rates} (result.recommendations for the evidence)")
    return "\n".join(lines)


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Hold back Lightning's and Optuna's INFO messages and known warnings for the call."""
    if not enabled:
        yield
        return
    levels = {name: logging.getLogger(name).level for name in _CHATTY}
    # MLflow sets its loggers' level when first imported (maybe during this call): tell it too.
    env = os.environ.get("MLFLOW_LOGGING_LEVEL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    with warnings.catch_warnings():
        # Lightning 2.6 on torch 2.13 warns about its own use of a torch API once per trial.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
            if env is None:
                os.environ.pop("MLFLOW_LOGGING_LEVEL", None)


@contextlib.contextmanager
def _trial_lines(metric: str) -> Iterator[Callable[[optuna.Study], None]]:
    """A progress function logging one INFO line per finished trial (as ``droptune tune`` prints).

    With no handler configured for it (a fresh notebook), a stderr handler is attached for
    the call, as Lightning does for its own logger; a configured ``logging`` is left alone.
    """
    from droptune.commands._progress import ENDED, trial_line

    seen: set[int] = set()
    started = datetime.datetime.now()  # Optuna's (naive, local) clock: a resumed study's old trials stay quiet

    def progress(study: optuna.Study) -> None:
        for trial in study.get_trials(deepcopy=False, states=ENDED):
            ended = trial.datetime_complete
            if trial.number not in seen and (ended is None or ended >= started):
                seen.add(trial.number)
                log.info("%s", trial_line(trial, metric))

    handler, level = None, log.level
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        yield progress
    finally:
        log.setLevel(level)
        if handler is not None:
            log.removeHandler(handler)


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
