"""Pre-flight: everything that can be checked about a study before any store is touched.

``droptune tune`` calls :func:`preflight` right after loading the study file: the store
URLs (they parse, their servers answer, in seconds), then the model and data (built, one
training and one validation batch, the logged metrics). Each failure is one
:class:`~droptune.exceptions.DroptuneError` naming the file, key or URL, what was wrong
and the fix, and nothing has been created on disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from droptune.preflight._ready import wait_until_ready
from droptune.preflight._training import check_training
from droptune.preflight._urls import (
    DEFAULT_TIMEOUT_S,
    TRACKING_SCHEMES,
    check_storage_url,
    check_tracking_uri,
)

if TYPE_CHECKING:
    from droptune.config import StudySpec

__all__ = ["DEFAULT_TIMEOUT_S", "TRACKING_SCHEMES", "check_storage_url", "check_tracking_uri", "check_training", "preflight", "wait_until_ready"]


def preflight(spec: StudySpec, *, timeout: float = DEFAULT_TIMEOUT_S, train: bool = True) -> None:
    """Check a study's stores and model before anything is created.

    Args:
        spec: The loaded study.
        timeout: Seconds each store server gets to answer.
        train: Also build the model and data and fit one training and one validation batch.

    Raises:
        ConfigError: A URL that does not parse, an unsupported scheme, a metric never logged...
        StudyError: A store that cannot be reached or written, the model failing on one batch...
    """
    check_storage_url(spec.storage, timeout)
    check_tracking_uri(spec.tracking_uri, timeout)
    if train:
        check_training(spec)
