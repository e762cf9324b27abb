"""Optuna's journal storage, with a trial's writes grouped into one append.

Optuna's :class:`~optuna.storages.JournalStorage` appends every write to its file under the
backend's lock and ``fsync``s it: about a millisecond each, almost all of it the ``fsync``. A
packed population writes one report per member per epoch and a dozen attributes per trial,
so those appends, not training, bounded a compute-free study (5120 reports: 4.3 s of a 9.5 s
study). Optuna has no batch write; :meth:`BatchedJournalStorage.batch` adds one: inside it,
writes that only add to a running trial (its parameters, reports, user and system
attributes) are kept and appended together, with one lock and one ``fsync``, when the
batch ends. Everything else (creating a trial, ``tell``, study attributes) is written at once,
after the batch's writes so that the file keeps the order they were made in.

Nothing this process reads from the trial is stale inside a batch: Optuna's ``Trial`` keeps
its own parameters, reports and attributes (``_cached_frozen_trial``) and reads none of them
back from the storage. Other processes see the writes when the batch ends, as they would
see a trial's writes from a slower machine. A batch left by an exception is still written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.storages.journal._storage import JournalOperation

from droptune.stores._journal_file import SafeJournalFileBackend

__all__ = ["BatchedJournalStorage", "write_batch"]

log = logging.getLogger(__name__)

# Writes that only add to a running trial: nothing in this process reads them back.
DEFERRABLE = frozenset({
    JournalOperation.SET_TRIAL_PARAM,
    JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE,
    JournalOperation.SET_TRIAL_USER_ATTR,
    JournalOperation.SET_TRIAL_SYSTEM_ATTR,
})


class BatchedJournalStorage(optuna.storages.JournalStorage):
    """A :class:`~optuna.storages.JournalStorage` on a file whose trial writes can be batched.

    The file is a :class:`~droptune.stores._journal_file.SafeJournalFileBackend`: a torn last line
    (a full disk, a killed write) is set aside on open instead of corrupting the study.

    Args:
        path: The journal file.
    """

    def __init__(self, path: str) -> None:
        super().__init__(SafeJournalFileBackend(path))
        self._pending = threading.local()  # each thread batches its own writes

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Keep this thread's trial writes and append them in one go at the end (nests)."""
        if getattr(self._pending, "logs", None) is not None:
            yield
            return
        self._pending.logs = []
        try:
            yield
        finally:
            logs, self._pending.logs = self._pending.logs, None
            if logs:
                with self._thread_lock:
                    self._append(logs)

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        # Called by every JournalStorage write, under its thread lock, before it re-reads the file.
        entry = {"op_code": op_code, "worker_id": self._replay_result.worker_id, **extra_fields}
        logs = getattr(self._pending, "logs", None)
        if logs is None:
            self._backend.append_logs([entry])
        elif op_code in DEFERRABLE:
            logs.append(entry)
        else:  # written now, after what the batch holds: the file keeps the order of the writes
            self._pending.logs = []
            if logs:
                self._append(logs)
            self._backend.append_logs([entry])

    def _append(self, logs: list[dict[str, Any]]) -> None:
        self._backend.append_logs(logs)
        while True:
            try:
                self._sync_with_backend()
                return
            except optuna.exceptions.UpdateFinishedTrialError:
                # A write to a trial another process failed meanwhile: dropped, as a single
                # write would have been (droptune.tuning._recorder._optuna_write). The
                # replay counted it; the next read applies the writes after it.
                log.debug("batched write to a finished trial dropped")


def write_batch(storage: Any) -> contextlib.AbstractContextManager[None]:
    """``storage.batch()`` where the storage batches its writes; otherwise nothing.

    Optuna wraps an RDB storage in a cache (``_CachedStorage``) that passes trial writes on
    to it: the batch is the wrapped storage's (:class:`droptune.stores._rdb_batch.BatchedRDBStorage`).
    """
    batch = getattr(storage, "batch", None) or getattr(getattr(storage, "_backend", None), "batch", None)
    return batch() if batch is not None else contextlib.nullcontext()
