"""The study-file spec: frozen dataclasses, the constraint table they are checked by, and ``load_config``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from droptune._io import read_text_file, safe_load_unique
from droptune._layer_types import LAYER_TYPES
from droptune.config._constraints import (
    AnyOf,
    Interval,
    InvalidValue,
    Keys,
    NonEmpty,
    Options,
    Pair,
    Rule,
    check_rules,
    message,
)
from droptune.config._project import project_root, resolve_sqlite_url
from droptune.config._schema import build_dataclass
from droptune.exceptions import ConfigError

SAMPLERS = ("tpe", "gp", "random", "cmaes")
PRUNERS = ("median", "hyperband", "successive_halving", "none")
GRANULARITIES = ("site", "type", "coarse-to-fine", "global")
DIRECTIONS = ("minimize", "maximize")
DEFAULT_STORAGE = "sqlite:///studies/droptune.db"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
NO_TRACKING = "none"  # tracking_uri that logs to no MLflow store (a null tracker)
TRACKING_FAILURES = ("stop", "continue")  # what a study does when its MLflow tracking fails mid-study
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seeds are unsigned 32-bit


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
    pack: int | Literal["auto"] = 1
    executor: str | None = None
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
    gap_subset: int | float | None = None  # rows (int) or fraction of the validation set (float); None: all


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
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    tracking_failure: Literal["stop", "continue"] = "stop"
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


PackMode = Literal["unpacked", "packed", "auto"]


def pack_mode(search: SearchSpec) -> PackMode:
    """Whether a study trains its trials packed: the one place that reads ``search.pack`` for it.

    ``auto`` decides per worker, from a memory probe of its GPU (it falls back to unpacked
    rather than refuse the study).

    Example:
        >>> pack_mode(SearchSpec()), pack_mode(SearchSpec(pack=4)), pack_mode(SearchSpec(pack="auto"))
        ('unpacked', 'packed', 'auto')
    """
    if search.pack == "auto":
        return "auto"
    return "packed" if search.pack > 1 else "unpacked"


def _packed(spec: StudySpec) -> bool:
    """Packs for sure: the load-time checks of packed training apply."""
    return pack_mode(spec.search) == "packed"


def _lightning_precisions() -> tuple[str, ...]:
    from lightning.fabric.connector import _PRECISION_INPUT_STR, _PRECISION_INPUT_STR_ALIAS

    return get_args(_PRECISION_INPUT_STR) + get_args(_PRECISION_INPUT_STR_ALIAS)


def _lightning_accelerators() -> tuple[str, ...]:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))


def _packed_precisions() -> tuple[str, ...]:
    from droptune.config._packed_tables import PRECISIONS  # lazily: it imports torch

    return tuple(PRECISIONS)


_PACKED_FIX = "Packed training (search.pack > 1) supports only these; use search.pack: 1 otherwise."
_RATE = Interval(0.0, 1.0 - 1e-12)  # a drop probability in [0, 1)

# Every value check of a study file, by key path (sklearn's `_parameter_constraints` idea).
# Types of the structure (mappings, lists, strings) come from the dataclasses above.
PARAMETER_CONSTRAINTS: dict[str, Rule | tuple[Rule, ...]] = {
    "name": Rule(NonEmpty()),
    "search.granularity": Rule(Options(GRANULARITIES)),
    "search.coarse_trials": Rule(Interval(0, integer=True)),
    "search.ranges.*": Rule(Pair(_RATE), keys=Keys(LAYER_TYPES), fix="Rates are drop probabilities in [0, 1)."),
    "search.layer_types.*": Rule(Options(LAYER_TYPES)),
    "search.sampler": Rule(Options(SAMPLERS)),
    "search.pruner": Rule(Options(PRUNERS)),
    "search.n_trials": Rule(Interval(1, integer=True)),
    "search.timeout": Rule(Interval(0, low_open=True), allow_none=True, fix="Seconds; null means no time limit."),
    "search.pack": Rule(
        AnyOf((Interval(1, integer=True), Options(("auto",)))),
        fix='"auto" packs as many trials as the GPU memory holds (1 without a GPU or when the model does not pack).',
    ),
    "search.executor": Rule(
        NonEmpty(), allow_none=True,
        fix="The name of a registered executor (droptune.tuning.executors.EXECUTORS); null: from search.pack.",
    ),
    "search.workers": Rule(Interval(1, integer=True)),
    "search.workers_per_gpu": Rule(Interval(1, integer=True), allow_none=True),
    "search.heartbeat_interval": Rule(
        Interval(0, integer=True), allow_none=True, fix="Seconds; 0 or null turns heartbeats off."
    ),
    "objective.metric": Rule(NonEmpty()),
    "objective.direction": Rule(Options(DIRECTIONS)),
    "objective.max_gap": Rule(Interval(), allow_none=True),
    "trainer.max_epochs": Rule(Interval(1, integer=True)),
    "trainer.early_stopping_patience": Rule(Interval(1, integer=True), allow_none=True),
    # Packed populations (search.pack > 1) are refused at load time, not after the stores exist.
    "trainer.accelerator": (
        Rule(Options(_lightning_accelerators)),
        Rule(Options(("auto", "cpu", "gpu", "cuda")), when=_packed, fix=_PACKED_FIX),
    ),
    "trainer.devices": Rule(Interval(1, integer=True)),
    "trainer.gap_subset": Rule(
        AnyOf((Interval(1, integer=True), Interval(0.0, 1.0, low_open=True))),
        allow_none=True,
        fix="Training rows on which the gap is measured: a count, a fraction of the validation set, or null "
        "(as many as the validation set).",
    ),
    "trainer.precision": (
        Rule(Options(_lightning_precisions)),
        Rule(Options(_packed_precisions), when=_packed, fix=_PACKED_FIX),
    ),
    "storage": Rule(NonEmpty()),
    "tracking_uri": Rule(NonEmpty()),
    "tracking_failure": Rule(
        Options(TRACKING_FAILURES),
        fix="When the MLflow tracking server stops answering mid-study: stop the study (resume later with the "
        "same command) or continue it without MLflow.",
    ),
    "seed": Rule(Interval(0, SEED_MAX, integer=True), fix="Seeds are unsigned 32-bit integers."),
}


def load_config(
    path: str | os.PathLike[str],
    overrides: Mapping[str, Any] | None = None,
    *,
    before_imports: Callable[[StudySpec], None] | None = None,
) -> StudySpec:
    """Read and validate a study file.

    The checks that import nothing run first (keys, types, ranges, names), so that a mistake
    there is reported at once; then those that import the model, data and loss classes, and
    Lightning (its accelerators and precisions), which take seconds the first time.

    Relative SQLite stores of the file (and the default ones) are made absolute against the
    study's :func:`project_root`; relative ones given in ``overrides`` against the current
    directory, as a shell user expects of a flag.

    Args:
        path: A YAML study file (UTF-8).
        overrides: Values that replace the file's, keyed as in :data:`OVERRIDES`
            (``n_trials``, ``storage``...); None values are ignored. They are checked by
            the same table, and a bad one is reported under its flag (``--n-trials``).
        before_imports: Called with the spec once the checks that import nothing have
            passed, before the ones that import (the CLI prints its first line there).

    Returns:
        The validated study.

    Raises:
        ConfigError: Naming the file (or flag) and the key path of the first problem found.
    """
    path = Path(path)
    data = safe_load_unique(read_text_file(path, what="study file"), source=str(path))
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a study file is a mapping with at least 'name', 'model' and 'data'; "
            f"got {type(data).__name__ if data is not None else 'an empty file'}."
        )
    root = project_root(path)
    for key in ("storage", "tracking_uri"):
        if isinstance(data.get(key), str):
            data[key] = resolve_sqlite_url(data[key], root)
    flags = {}
    for key, value in (overrides or {}).items():
        if value is not None:
            *parents, leaf = OVERRIDES[key]
            node = data
            for parent in parents:
                node = node.setdefault(parent, {})
            if isinstance(node, dict):  # otherwise validation reports the bad section
                node[leaf] = resolve_sqlite_url(value, Path.cwd()) if key in ("storage", "tracking_uri") else value
                flags[".".join(OVERRIDES[key])] = "--" + key.replace("_", "-")
    data.setdefault("storage", resolve_sqlite_url(DEFAULT_STORAGE, root))
    data.setdefault("tracking_uri", resolve_sqlite_url(DEFAULT_TRACKING_URI, root))
    data["source"] = str(path)
    try:
        spec = build_dataclass(StudySpec, data, "", shorthands={ClassSpec: "class_path"})
        _check(spec, before_imports)
    except InvalidValue as err:
        flag = flags.get(err.key)
        raise ConfigError(f"{flag} (overrides {path}): {err}" if flag else f"{path}: {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return spec


def spec_from_dict(data: Mapping[str, Any]) -> StudySpec:
    """Validate a study given as a mapping (the parsed YAML) instead of a file."""
    spec = build_dataclass(StudySpec, dict(data), "", shorthands={ClassSpec: "class_path"})
    _check(spec)
    return spec


def _check(spec: StudySpec, before_imports: Callable[[StudySpec], None] | None = None) -> None:
    check_rules(spec, PARAMETER_CONSTRAINTS, deferred=False)
    if before_imports is not None:
        before_imports(spec)
    check_rules(spec, PARAMETER_CONSTRAINTS, deferred=True)  # they import Lightning
    if _packed(spec) and spec.loss is not None:
        _check_loss(spec.loss)
    _check_class(spec.model, "model", "lightning.pytorch.LightningModule")
    _check_class(spec.data, "data", "lightning.pytorch.LightningDataModule")


def _check_loss(loss: str) -> None:
    from droptune.config._packed_tables import LOSSES  # lazily: it imports torch

    if loss in LOSSES:
        return
    if "." not in loss:
        raise InvalidValue("loss", message("loss", f"one of: {', '.join(LOSSES)}, or a dotted path", loss))
    try:
        ClassSpec(class_path=loss).resolve()
    except ConfigError as err:
        raise ConfigError(f"loss: {err}") from None


def _check_class(spec: ClassSpec, key: str, base_path: str) -> None:
    import lightning.pytorch as pl

    base = getattr(pl, base_path.rpartition(".")[2])
    try:
        cls = spec.resolve()
    except ConfigError as err:
        raise ConfigError(f"{key}.{err}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}.class_path {spec.class_path!r} is not a {base_path} subclass.")
