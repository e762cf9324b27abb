"""The trackers droptune knows: a registry from a tracking URI's scheme to a tracker factory.

:func:`build_tracker` reads the scheme of a tracking URI (``none`` for no tracking) and builds
the tracker registered for it (:func:`droptune.tracking.tracker_for` does so for a study). Adding
a tracker is a module with a class that follows :class:`~droptune.tracking.Tracker` and one
entry in :data:`TRACKERS`; the pre-flight accepts every registered scheme.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from droptune.config import NO_TRACKING
from droptune.exceptions import ConfigError
from droptune.tracking._null import NullTracker

if TYPE_CHECKING:
    from droptune.tracking._base import Tracker

# A factory builds a tracker from the tracking URI and the experiment (the study's name).
TrackerFactory = Callable[[str, str], "Tracker"]


def _mlflow(tracking_uri: str, experiment: str) -> Tracker:
    from droptune.tracking._mlflow import MlflowTracker  # MLflow is imported when a study tracks to it

    return MlflowTracker(tracking_uri=tracking_uri, experiment=experiment)


def _none(tracking_uri: str, experiment: str) -> Tracker:
    return NullTracker()


# The URI schemes MLflow serves: its database backends and a tracking server.
MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")

TRACKERS: dict[str, TrackerFactory] = {
    NO_TRACKING: _none,
    **dict.fromkeys(MLFLOW_SCHEMES, _mlflow),
}


def tracker_scheme(tracking_uri: str) -> str:
    """The key of :data:`TRACKERS` a tracking URI names: its scheme without a driver (``none`` as is).

    Example:
        >>> tracker_scheme("postgresql+psycopg://db/mlflow"), tracker_scheme("none"), tracker_scheme("mlruns")
        ('postgresql', 'none', '')
    """
    if tracking_uri == NO_TRACKING:
        return NO_TRACKING
    return urlsplit(tracking_uri).scheme.lower().split("+")[0]


def build_tracker(tracking_uri: str, experiment: str) -> Tracker:
    """The registered tracker for ``tracking_uri``, logging to experiment ``experiment``.

    Raises:
        ConfigError: If no tracker is registered for the URI's scheme (the message lists them).
    """
    scheme = tracker_scheme(tracking_uri)
    factory = TRACKERS.get(scheme)
    if factory is None:
        raise ConfigError(
            f"tracking_uri {tracking_uri!r}: no tracker for scheme {scheme!r}; use one of: "
            f"{', '.join(sorted(TRACKERS))}."
        )
    return factory(tracking_uri, experiment)
