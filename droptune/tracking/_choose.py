"""The study's tracker: the registered one for its tracking URI, offloaded when the study packs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from droptune.config import NO_TRACKING, pack_mode
from droptune.tracking._health import guard
from droptune.tracking._offload import OffloadedTracker
from droptune.tracking._registry import build_tracker

if TYPE_CHECKING:
    from droptune.config import StudySpec
    from droptune.tracking._base import Tracker


def tracker_for(spec: StudySpec) -> Tracker:
    """The study's tracker, from :data:`TRACKERS` by the scheme of ``spec.tracking_uri``.

    A packed study logs its trials from a child process (:class:`~droptune.tracking.OffloadedTracker`
    wrapping the registered tracker): its populations start and end many small trials at once,
    and the tracker's Python would otherwise take the interpreter lock from training. One trial
    per fit gains nothing from it, nor does a study that tracks nothing. A tracking server is
    waited for in bounded time (:func:`droptune.tracking._health.guard`).
    """

    def make() -> Tracker:
        tracker = build_tracker(spec.tracking_uri, spec.name)
        if spec.tracking_uri == NO_TRACKING or pack_mode(spec.search) == "unpacked":
            return tracker
        return OffloadedTracker(tracking_uri=spec.tracking_uri, experiment=spec.name, tracker=tracker)

    return guard(spec, make)
