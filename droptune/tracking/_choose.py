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


# Measured on the 2-core CPU (benchmarks/results/throughput_packed_s2.md): MLflow's writes of
# one trial's run in this process (create, one batch of metrics, terminate), and the CPU
# time the writer process takes to start and open the store.
IN_PROCESS_RUN_S = 0.035
OFFLOAD_START_S = 3.5


def offload_pays(spec: StudySpec) -> bool:
    """Whether a child process for the tracker's trial writes saves this study time.

    The child costs seconds to start (an interpreter, MLflow's imports, the store opened
    again) and then saves about :data:`IN_PROCESS_RUN_S` of this process's time per trial.
    A small study ends before it has started, and its end waits for it: a packed study of
    8 trials x 4 epochs spent longer waiting for the child than training.
    """
    return pack_mode(spec.search) != "unpacked" and spec.search.n_trials * IN_PROCESS_RUN_S >= OFFLOAD_START_S


def tracker_for(spec: StudySpec) -> Tracker:
    """The study's tracker, from :data:`TRACKERS` by the scheme of ``spec.tracking_uri``.

    A large packed study (:func:`offload_pays`) logs its trials from a child process (:class:`~droptune.tracking.OffloadedTracker`
    wrapping the registered tracker): its populations start and end many small trials at once,
    and the tracker's Python would otherwise take the interpreter lock from training. One trial
    per fit gains nothing from it, nor does a study that tracks nothing. A tracking server is
    waited for in bounded time (:func:`droptune.tracking._health.guard`).
    """

    def make() -> Tracker:
        tracker = build_tracker(spec.tracking_uri, spec.name)
        if spec.tracking_uri == NO_TRACKING or not offload_pays(spec):
            return tracker
        return OffloadedTracker(tracking_uri=spec.tracking_uri, experiment=spec.name, tracker=tracker)

    return guard(spec, make)
