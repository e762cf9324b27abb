"""Helpers of the worker, resume and failure tests: study files, read-back, and
LightningModules that misbehave on cue.

Study files name the modules as ``_workers_kit.<Class>``; worker subprocesses find this
folder through PYTHONPATH (see ``subprocess_env``). Cues come from environment variables so
that a subprocess and the test agree without sharing memory.
"""

from __future__ import annotations

import math
import os
import textwrap
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import optuna
import torch
from mlflow.tracking import MlflowClient
from typing_extensions import override

from droptune.stores._study_lock import study_lock
from droptune.testing import TinyModule

HERE = Path(__file__).resolve().parent
DEADLINE_S = 120.0
STORAGE = "sqlite:///studies/droptune.db"
TRACKING = "sqlite:///mlruns/mlflow.db"


def reset_mlflow_stores() -> None:
    """Forget MLflow's cached SQLite engines, keyed by URI: a relative ``sqlite:///mlruns/...``
    URI names another file in each test's folder, but MLflow would reuse the first one's."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    for engine in SqlAlchemyStore._engine_map.values():
        engine.dispose()
    SqlAlchemyStore._engine_map.clear()
    TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()


def write_study(folder: Path, *, name: str, model: str = "droptune.testing.TinyModule", n_trials: int = 3,
                extra: str = "") -> Path:
    """A tiny CPU study file: random sampler, no pruning, 2 epochs."""
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            model: {{class_path: {model}}}
            data: {{class_path: droptune.testing.TinyDataModule}}
            search: {{n_trials: {n_trials}, sampler: random, pruner: none}}
            trainer: {{max_epochs: 2, early_stopping_patience: null, accelerator: cpu}}
            """
        )
        + textwrap.dedent(extra)
    )
    return path


def load_trials(name: str, storage: str = STORAGE) -> list[optuna.trial.FrozenTrial]:
    """All trials of study ``name``, read afresh from the storage."""
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def mlflow_runs(name: str, tracking_uri: str = TRACKING) -> tuple[list[Any], list[Any]]:
    """The study's parent runs and trial runs in MLflow."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in found if r.data.tags.get("droptune.role") == "study"]
    children = [r for r in found if r.data.tags.get("droptune.role") == "trial"]
    return parents, children


def poll(condition: Callable[[], Any], *, timeout: float = DEADLINE_S, what: str = "condition") -> Any:
    """Call ``condition`` until it returns something true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)

# Fits started by this process, counted per class.
FITS: dict[str, int] = {}


def assert_lock_excludes(storage: optuna.storages.BaseStorage) -> None:
    """A second holder of a study's lock (another connection or file description, excluded
    like another process) gets in only after the first has left."""
    events: list[str] = []
    entered = threading.Event()

    def contender() -> None:
        entered.set()
        with study_lock(storage, "locked"):
            events.append("contender in")

    with study_lock(storage, "locked"):
        thread = threading.Thread(target=contender)
        thread.start()
        entered.wait(10)
        time.sleep(0.3)  # the contender's window to (wrongly) get in
        events.append("holder out")
    thread.join(10)
    assert events == ["holder out", "contender in"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a worker subprocess that must import this module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _count_fit(module: TinyModule) -> int:
    """Count a trial's fit; 0 for the one-batch check fit before a study (``fast_dev_run``)."""
    if module.trainer.fast_dev_run:
        return 0
    name = type(module).__name__
    FITS[name] = FITS.get(name, 0) + 1
    return FITS[name]


class BarrierTinyModule(TinyModule):
    """Holds its first fit in each process until ``DROPTUNE_TEST_BARRIER_N`` processes got there.

    Each process drops a file named after its pid in ``DROPTUNE_TEST_BARRIER``; so every
    worker of a parallel test provably runs a trial, at the same time as the others.
    """

    @override
    def on_fit_start(self) -> None:
        folder = os.environ.get("DROPTUNE_TEST_BARRIER")
        if not folder or _count_fit(self) != 1:
            return
        Path(folder, str(os.getpid())).touch()
        wanted = int(os.environ.get("DROPTUNE_TEST_BARRIER_N", "1"))
        end = time.monotonic() + DEADLINE_S
        while len(os.listdir(folder)) < wanted:
            if time.monotonic() > end:
                raise RuntimeError(f"barrier: {len(os.listdir(folder))} of {wanted} workers arrived")
            time.sleep(0.05)


class HangingTinyModule(TinyModule):
    """Hangs in the training step of the fit after the first ``DROPTUNE_TEST_HANG_AFTER`` in a process.

    The test kills or interrupts the process meanwhile; without the variable it trains normally.
    """

    @override
    def on_fit_start(self) -> None:
        after = os.environ.get("DROPTUNE_TEST_HANG_AFTER")
        self._hang = after is not None and _count_fit(self) > int(after)

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        end = time.monotonic() + DEADLINE_S
        while self._hang:  # waits to be killed or interrupted; a bounded wait in case it is not
            if time.monotonic() > end:
                raise RuntimeError("HangingTinyModule was never stopped")
            time.sleep(0.05)
        return super().training_step(batch, batch_idx)


class FaultyTinyModule(TinyModule):
    """Fit 1 of the process runs out of CUDA memory, fit 2 gets a NaN loss; the rest train.

    ``INSTANCES`` keeps weak references, so a test can check a failed trial's model was freed.
    """

    INSTANCES: ClassVar[list[weakref.ref]] = []

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        FaultyTinyModule.INSTANCES.append(weakref.ref(self))
        self._fault = ""

    @override
    def on_fit_start(self) -> None:
        self._fault = {1: "oom", 2: "nan"}.get(_count_fit(self), "")

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self._fault == "oom":
            self.ballast = torch.zeros(1024, 1024)  # what "CUDA" could not hold, to be freed
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        loss = super().training_step(batch, batch_idx)
        return loss * math.nan if self._fault == "nan" else loss


class InterruptingTinyModule(TinyModule):
    """Fit 2 of the process is interrupted as by Ctrl-C, in its first training step."""

    @override
    def on_fit_start(self) -> None:
        self._interrupt = _count_fit(self) == 2

    @override
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self._interrupt:
            raise KeyboardInterrupt
        return super().training_step(batch, batch_idx)
