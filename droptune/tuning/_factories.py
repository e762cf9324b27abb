"""Study-file names -> Optuna samplers, pruners and storages (one dict each, no if-chains)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from droptune.config import StudySpec, absolute_sqlite_url


def _tpe(seed: int) -> optuna.samplers.TPESampler:
    # multivariate TPE models the rates jointly: the best rate of one layer depends on the others.
    # group=True keeps that joint model when the space grows mid-study (coarse-to-fine's
    # per-site scales) instead of falling back to independent sampling for the new variables.
    # 5 random start-up trials, not Optuna's 10: the enqueued prior trial and the narrow
    # per-type ranges already place the first trials well (benchmarks/search_quality.py).
    with warnings.catch_warnings():  # `group` is "experimental" in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=5)


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed: optuna.samplers.CmaEsSampler(seed=seed),
}

PRUNERS: dict[str, Callable[[StudySpec], optuna.pruners.BasePruner]] = {
    "median": lambda spec: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    "hyperband": lambda spec: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.trainer.max_epochs),
    "successive_halving": lambda spec: optuna.pruners.SuccessiveHalvingPruner(),
    "none": lambda spec: optuna.pruners.NopPruner(),
}

# Several processes write one SQLite file: wait for the lock rather than fail at once.
SQLITE_TIMEOUT_S = 60


def make_storage(url: str, *, heartbeat_interval: int | None = None) -> optuna.storages.RDBStorage:
    """An RDB storage for ``url``; SQLite folders are created, locks waited for.

    With ``heartbeat_interval``, running trials beat; a trial whose worker died is failed
    after a grace period and retried once with the same parameters.
    """
    url = absolute_sqlite_url(url)
    engine_kwargs: dict = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    heartbeat: dict[str, Any] = {}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0; droptune relies on them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat_interval:
            heartbeat = {
                "heartbeat_interval": heartbeat_interval,
                "grace_period": heartbeat_interval * 4,
                "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            }
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **heartbeat)


def enable_wal(url: str) -> None:
    """Switch an existing SQLite database to write-ahead logging (other URLs: nothing to do).

    In WAL mode readers (progress bars, idle workers) do not block the writer and writers
    wait less. The mode is stored in the database file, so the launching process sets it
    once for every later connection. Like SQLite itself, it needs a local file system.
    """
    if not url.startswith("sqlite:///"):
        return
    import sqlite3

    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file():
        return
    connection = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
    try:
        if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as err:  # busy: another process has it open; WAL is an optimisation
        logging.getLogger(__name__).debug("could not enable WAL on %s: %s", path, err)
    finally:
        connection.close()
