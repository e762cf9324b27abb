"""Study files: YAML parsed into frozen dataclasses, validated once at load.

Every key is optional except ``name``, ``model`` and ``data``. Unknown keys, wrong types,
bad ranges and unknown names raise one :class:`~droptune.exceptions.ConfigError` naming the
file and the key path; nothing is created on disk before a study file has passed.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from droptune.exceptions import ConfigError, StudyError
from droptune.sites import LAYER_TYPES

SAMPLERS = ("tpe", "gp", "random", "cmaes")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
GRANULARITIES = ("site", "type", "global")


@dataclass(frozen=True)
class ClassSpec:
    """An importable class and the keyword arguments to build it with (Lightning CLI style)."""

    class_path: str
    init_args: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> type:
        """Import and return the class, or raise ConfigError saying why it cannot be."""
        module_name, _, attr = self.class_path.rpartition(".")
        if not module_name:
            raise ConfigError(f"class_path {self.class_path!r} must be a dotted path, e.g. 'mypkg.models.MyModel'.")
        if os.getcwd() not in sys.path:  # a user's own package, run from its project folder
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise ConfigError(f"class_path {self.class_path!r} does not import: {err}.") from None
        try:
            return getattr(module, attr)
        except AttributeError:
            raise ConfigError(f"class_path {self.class_path!r}: module {module_name!r} has no {attr!r}.") from None

    def build(self) -> Any:
        """Instantiate the class with ``init_args``."""
        return self.resolve()(**self.init_args)


@dataclass(frozen=True)
class SearchSpec:
    """Which sites are tuned, over which ranges, with which sampler and pruner."""

    granularity: Literal["site", "type", "coarse-to-fine", "global"] = "type"
    coarse_trials: int = 20
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    layer_types: dict[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    sampler: Literal["tpe", "gp", "random", "cmaes"] = "tpe"
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    n_trials: int = 40
    timeout: float | None = None
    pack: int = 1
    workers: int = 1
    workers_per_gpu: int | None = None
    heartbeat_interval: int | None = 60


@dataclass(frozen=True)
class ObjectiveSpec:
    """What a trial optimises: the best epoch's ``metric``, optionally under a gap limit."""

    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    max_gap: float | None = None


@dataclass(frozen=True)
class TrainerSpec:
    """Lightning Trainer settings for each trial."""

    max_epochs: int = 30
    early_stopping_patience: int | None = 5
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "32-true"


@dataclass(frozen=True)
class StudySpec:
    """A whole study file."""

    name: str
    model: ClassSpec
    data: ClassSpec
    search: SearchSpec = field(default_factory=SearchSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    trainer: TrainerSpec = field(default_factory=TrainerSpec)
    loss: str | None = None
    storage: str = "sqlite:///studies/droptune.db"
    tracking_uri: str = "sqlite:///mlruns/mlflow.db"
    seed: int = 0
    source: str | None = None  # the file it came from, for messages and the MLflow artifact


# Flags of `droptune tune` and where they land in the spec.
OVERRIDES = {
    "n_trials": ("search", "n_trials"),
    "timeout": ("search", "timeout"),
    "pack": ("search", "pack"),
    "workers": ("search", "workers"),
    "workers_per_gpu": ("search", "workers_per_gpu"),
    "heartbeat_interval": ("search", "heartbeat_interval"),
    "storage": ("storage",),
    "tracking_uri": ("tracking_uri",),
    "max_epochs": ("trainer", "max_epochs"),
    "accelerator": ("trainer", "accelerator"),
}


def absolute_sqlite_url(url: str) -> str:
    """Make a relative SQLite URL absolute against the current directory.

    Relative store paths are relative to where the command runs. Resolving them once, up
    front, matters because MLflow caches its stores by URI string: a relative URI reused
    after a change of directory would silently write to the first directory's database.
    """
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(Path(url.removeprefix(prefix)).resolve())
    return url


def require_sqlite_store(url: str, *, what: str, flag: str) -> None:
    """Refuse a SQLite store that does not exist yet: only ``droptune tune`` creates stores.

    Commands that read a study (recommend, export, ui, worker) would otherwise create an
    empty database where the user mistyped a path.

    Raises:
        StudyError: Naming the store, where it was looked for, and the fix.
    """
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        if not db.is_file():
            raise StudyError(
                f"no {what} at {url} ({flag}): {db} does not exist (relative to {Path.cwd()}). "
                f"Run `droptune tune STUDY_FILE` here first, or point {flag} at the study's store."
            )


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> StudySpec:
    """Read and validate a study file.

    Args:
        path: A YAML study file.
        overrides: Values that replace the file's, keyed as in :data:`OVERRIDES`
            (``n_trials``, ``storage``...); None values are ignored.

    Returns:
        The validated study.

    Raises:
        ConfigError: Naming the file and the key path of the first problem found.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read study file {path}: {err.strerror}.") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a study file is a mapping with at least 'name', 'model' and 'data'.")
    for key, value in (overrides or {}).items():
        if value is not None:
            *parents, leaf = OVERRIDES[key]
            node = data
            for parent in parents:
                node = node.setdefault(parent, {})
            if isinstance(node, dict):  # otherwise validation reports the bad section
                node[leaf] = value
    data["source"] = str(path)
    try:
        spec = _build(StudySpec, data, "")
        _check(spec)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return spec


def spec_from_dict(data: Mapping[str, Any]) -> StudySpec:
    """Validate a study given as a mapping (the parsed YAML) instead of a file."""
    spec = _build(StudySpec, dict(data), "")
    _check(spec)
    return spec


def _check(spec: StudySpec) -> None:
    if not spec.name.strip():
        raise ConfigError("name must be a non-empty string.")
    search = spec.search
    for layer_type, (low, high) in search.ranges.items():
        key = f"search.ranges.{layer_type}"
        if layer_type not in LAYER_TYPES:
            raise ConfigError(f"{key}: unknown layer type {layer_type!r}; valid: {', '.join(LAYER_TYPES)}.")
        for bound in (low, high):
            if not 0.0 <= bound < 1.0:
                raise ConfigError(f"{key}: bounds must be drop probabilities in [0, 1); got [{low}, {high}].")
        if low > high:
            raise ConfigError(f"{key}: low must not exceed high; got [{low}, {high}].")
    for pattern, layer_type in search.layer_types.items():
        if layer_type not in LAYER_TYPES:
            raise ConfigError(
                f"search.layer_types.{pattern}: unknown layer type {layer_type!r}; valid: {', '.join(LAYER_TYPES)}."
            )
    _positive("search.n_trials", search.n_trials)
    if search.coarse_trials < 0:
        raise ConfigError(f"search.coarse_trials must be a whole number of trials, 0 or more; got {search.coarse_trials}.")
    _positive("search.pack", search.pack)
    _positive("search.workers", search.workers)
    if search.workers_per_gpu is not None:
        _positive("search.workers_per_gpu", search.workers_per_gpu)
    if search.heartbeat_interval is not None and search.heartbeat_interval < 0:
        raise ConfigError(
            "search.heartbeat_interval must be a whole number of seconds (0 or null turns "
            f"heartbeats off); got {search.heartbeat_interval}."
        )
    _positive("trainer.max_epochs", spec.trainer.max_epochs)
    _positive("trainer.devices", spec.trainer.devices)
    if spec.trainer.early_stopping_patience is not None:
        _positive("trainer.early_stopping_patience", spec.trainer.early_stopping_patience)
    if search.timeout is not None and search.timeout <= 0:
        raise ConfigError(f"search.timeout must be a positive number of seconds or null; got {search.timeout}.")
    if spec.objective.max_gap is not None and not math.isfinite(spec.objective.max_gap):
        raise ConfigError(f"objective.max_gap must be a finite number or null; got {spec.objective.max_gap}.")
    _check_class(spec.model, "model", "lightning.pytorch.LightningModule")
    _check_class(spec.data, "data", "lightning.pytorch.LightningDataModule")


def _positive(key: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{key} must be a positive integer; got {value}.")


def _check_class(spec: ClassSpec, key: str, base_path: str) -> None:
    import lightning.pytorch as pl

    base = getattr(pl, base_path.rpartition(".")[2])
    try:
        cls = spec.resolve()
    except ConfigError as err:
        raise ConfigError(f"{key}.{err}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}.class_path {spec.class_path!r} is not a {base_path} subclass.")


def _build(cls: type, data: Any, key: str) -> Any:
    """Build dataclass ``cls`` from ``data``, checking keys and types against its fields."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key or 'the study'} must be a mapping; got {type(data).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f"{key}." if key else ""
        raise ConfigError(f"unknown key {where}{unknown[0]}; valid keys: {', '.join(fields)}.")
    values = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"missing required key {sub}.")
            continue
        values[name] = _convert(hints[name], data[name], sub)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if dataclasses.is_dataclass(hint):
        if hint is ClassSpec and isinstance(value, str):
            value = {"class_path": value}
        return _build(typing.cast(type, hint), value, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not valid; choose one of: {', '.join(map(str, args))}.")
        return value
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping; got {type(value).__name__}.")
        return {str(k): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, str) and args[-1] is Ellipsis:
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list; got {type(value).__name__}.")
        if args[-1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key} must be a list of {len(args)} values [low, high]; got {list(value)}.")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    return _scalar(hint, value, key)


def _scalar(hint: Any, value: Any, key: str) -> Any:
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    expected = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}.get(hint, str(hint))
    raise ConfigError(f"{key} must be {expected}; got {value!r} ({type(value).__name__}).")
