"""Executors: how a study's trials train (the scheduler decides which trials and when).

See :mod:`droptune.tuning.executors._base` for the protocol, the registry and the shared trial start.
"""

from __future__ import annotations

from droptune.tuning.executors._base import (
    EXECUTORS,
    Executor,
    ExecutorFactory,
    StartedTrial,
    executor_kind,
    make_executor,
    start_trial,
)
from droptune.tuning.executors._fit import FitExecutor

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorFactory",
    "FitExecutor",
    "PackedExecutor",
    "StartedTrial",
    "executor_kind",
    "make_executor",
    "start_trial",
]


def __getattr__(name: str) -> object:
    # The packed executor needs torch.func and the packing machinery: loaded on first use.
    if name == "PackedExecutor":
        from droptune.tuning.executors._packed import PackedExecutor

        return PackedExecutor
    raise AttributeError(f"module 'droptune.tuning.executors' has no attribute {name!r}")
