"""Liveness: the health check between tracker calls, driven by a fake clock and probe (no thread
timing): a server is lost after FAILURES failed probes in a row, and the GuardedTracker treats
that as a failed call (same message, same policy); the thread stops with the study."""

from __future__ import annotations

import threading

import pytest

from droptune.tracking import NullTracker
from droptune.tracking._health import GuardedTracker, TrackingLost, check_tracking
from droptune.tracking._liveness import EVERY_S, FAILURES, TIMEOUT_S, Liveness, health_probe

URI = "http://127.0.0.1:9"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Probe:
    """Answers while ``alive``; counts its calls."""

    def __init__(self) -> None:
        self.alive, self.calls = True, 0
        self.called = threading.Event()

    def __call__(self) -> str | None:
        self.calls += 1
        self.called.set()
        return None if self.alive else "/health: [Errno 111] Connection refused"


def test_detection_is_bounded_under_30_s() -> None:
    assert FAILURES * EVERY_S + TIMEOUT_S <= 30


def test_lost_after_the_stated_number_of_failures_in_a_row_and_not_before() -> None:
    clock, probe, lost = Clock(), Probe(), []
    check = Liveness(probe, lost.append, clock=clock)
    assert check.step() == EVERY_S and probe.calls == 0  # the first probe waits a period
    clock.now += EVERY_S
    assert check.step() == EVERY_S and probe.calls == 1 and not lost
    probe.alive = False
    for n in range(1, FAILURES):
        clock.now += EVERY_S
        check.step()
        assert check.failed == n and not lost  # one failure may be a blip
    probe.alive = True  # the server answers again: the count starts over
    clock.now += EVERY_S
    check.step()
    assert check.failed == 0 and not lost
    probe.alive = False
    for _ in range(FAILURES):
        clock.now += EVERY_S
        wait = check.step()
    assert wait == float("inf")
    assert lost == [f"no answer to {FAILURES} checks in a row, /health: [Errno 111] Connection refused"]
    calls = probe.calls
    clock.now += 10 * EVERY_S
    check.step()
    assert probe.calls == calls and len(lost) == 1  # lost once; no more probes


def test_a_probe_is_not_made_before_it_is_due() -> None:
    clock, probe = Clock(), Probe()
    check = Liveness(probe, lambda why: None, clock=clock)
    clock.now += EVERY_S - 0.5
    assert check.step() == pytest.approx(0.5) and probe.calls == 0


def test_the_tracker_is_lost_as_by_a_failed_call_and_stop_raises_at_the_next_check() -> None:
    clock, probe = Clock(), Probe()
    tracker = GuardedTracker(NullTracker(), tracking_uri=URI, storage="sqlite:///studies/droptune.db",
                             policy="stop", probe=probe, clock=clock)
    assert tracker.liveness is not None
    tracker.start_trial(tracker.study_run(), 4, {})  # a trial is training: no tracker call for a long epoch
    tracker.liveness.stop()  # its thread started with the calls; driven by hand below
    probe.alive = False
    for _ in range(FAILURES):
        clock.now += EVERY_S
        tracker.liveness.step()
    with pytest.raises(TrackingLost, match=r"the MLflow tracking server http://127\.0\.0\.1:9 stopped answering at "
                       r"trial 4 \(no answer to 2 checks in a row, /health: \[Errno 111\] Connection refused\)"
                       r".*Safe: the Optuna study in sqlite:///studies/droptune\.db has every finished trial"):
        check_tracking(tracker)
    assert tracker.keeps_artifacts is False


def test_the_thread_runs_from_the_first_call_and_stops_with_the_study() -> None:
    probe, clock = Probe(), Clock()

    def hurried() -> float:  # each reading a period later: every step probes, the thread never waits
        clock.now += EVERY_S
        return clock.now

    tracker = GuardedTracker(NullTracker(), tracking_uri=URI, storage="s.db", policy="stop", probe=probe,
                             clock=hurried)
    assert tracker.liveness is not None
    assert not tracker.liveness.running()
    parent = tracker.study_run()
    assert probe.called.wait(60) and tracker.liveness.running()
    thread = tracker.liveness._thread
    tracker.end_study(parent)
    assert thread is not None and not thread.is_alive() and not tracker.liveness.running()
    assert thread.daemon  # never keeps the process alive


def test_health_probe_names_a_server_that_does_not_answer() -> None:
    why = health_probe("http://127.0.0.1:9", timeout=2)()  # port 9 (discard): nothing listens here
    assert why == "/health: [Errno 111] Connection refused"
