"""Storage and tracking writes kept off the training loop, in the order they were made.

Every Optuna and MLflow write costs milliseconds on SQLite (mostly waiting on the disk, with
the GIL released). A :class:`Bookkeeper` runs them on one background thread while the next
epoch trains; an error in one of them surfaces at the next :meth:`Bookkeeper.drain`, so a
failing store stops the worker as a synchronous write would.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)


class Bookkeeper:
    """Run calls one after another on a background thread, in the order they were submitted.

    Example:
        >>> books = Bookkeeper()
        >>> future = books.submit(sum, [1, 2])
        >>> books.drain(); future.result()
        3
        >>> books.close()
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="droptune-bookkeeping")
        self._pending: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)``; returns its future."""
        future = self._executor.submit(fn, *args, **kwargs)
        with self._lock:
            self._pending.append(future)
        return future

    def drain(self) -> None:
        """Wait for every queued call; raise the first exception one of them raised."""
        with self._lock:
            pending, self._pending = self._pending, []
        error: BaseException | None = None
        for future in pending:
            exc = future.exception()
            if exc is not None and error is None:
                error = exc
        if error is not None:
            raise error

    def close(self) -> None:
        """Finish the queued calls (errors are logged, not raised) and stop the thread."""
        try:
            self.drain()
        except Exception:
            log.warning("a queued storage or tracking write failed", exc_info=True)
        self._executor.shutdown(wait=True)
