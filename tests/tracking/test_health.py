"""GuardedTracker: a failing or hanging tracker is lost once, then does nothing; ``stop`` raises
TrackingLost where the scheduler checks, ``continue`` warns once and goes on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from droptune.config import load_config
from droptune.exceptions import ConfigError
from droptune.tracking import NullTracker
from droptune.tracking._health import (
    MLFLOW_HTTP,
    GuardedTracker,
    TrackingLost,
    bound_mlflow_http,
    check_tracking,
    guard,
    hurry,
    tracking_note,
)

URI = "http://127.0.0.1:9"


class Dying(NullTracker):
    """Answers until ``die`` is set, then fails every call (a server gone) or hangs (a frozen one)."""

    def __init__(self, *, hang: bool = False) -> None:
        super().__init__()
        self.die, self.hang, self.calls = threading.Event(), hang, 0
        self.release = threading.Event()

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self.calls += 1
        if self.die.is_set():
            if self.hang:
                self.release.wait()  # until the test ends
            raise ConnectionError("Connection refused")


def _guarded(inner: Dying, policy: str) -> GuardedTracker:
    return GuardedTracker(inner, tracking_uri=URI, storage="sqlite:///studies/droptune.db", policy=policy)


def test_stop_raises_tracking_lost_once_lost_and_later_calls_do_nothing() -> None:
    inner = Dying()
    tracker = _guarded(inner, "stop")
    parent = tracker.study_run()
    run = tracker.start_trial(parent, 3, {})
    tracker.log_epoch(run, 0, {"val_loss": 1.0})
    check_tracking(tracker)  # healthy: nothing
    inner.die.set()
    tracker.log_epoch(run, 1, {"val_loss": 1.0})  # the failure does not raise here (writes go on)
    with pytest.raises(TrackingLost, match=r"the MLflow tracking server http://127\.0\.0\.1:9 stopped answering at "
                       r"trial 3 \(ConnectionError: Connection refused\).*Safe: the Optuna study in "
                       r"sqlite:///studies/droptune\.db has every finished trial.*restart the tracking server"):
        check_tracking(tracker)
    calls = inner.calls
    tracker.log_epoch(run, 2, {"val_loss": 1.0})
    tracker.end_trial(run, "failed", reason="stopped")
    assert inner.calls == calls  # lost: nothing more reaches the server
    assert tracker.keeps_artifacts is False


def test_continue_warns_once_and_the_note_names_the_trial(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import droptune.tracking._health

    monkeypatch.setattr(droptune.tracking._health, "_WARNED", set())  # once per server and process
    inner = Dying()
    tracker = _guarded(inner, "continue")
    run = tracker.start_trial(tracker.study_run(), 5, {})
    inner.die.set()
    with caplog.at_level(logging.WARNING, logger="droptune.tracking._health"):
        tracker.log_epoch(run, 0, {"val_loss": 1.0})
        tracker.log_epoch(run, 1, {"val_loss": 1.0})
        later = tracker.start_trial("parent", 6, {})
    assert later == "untracked-trial-6"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "the study goes on without MLflow (tracking_failure: continue)" in lines[0]
    check_tracking(tracker)  # continue: never raises
    note = tracking_note(tracker)
    assert note is not None and note.startswith("MLflow stopped recording at trial 5 (ConnectionError")


def test_a_hung_call_is_given_up_once_the_study_is_stopping() -> None:
    inner = Dying(hang=True)
    tracker = _guarded(inner, "stop")
    run = tracker.start_trial(tracker.study_run(), 0, {})
    inner.die.set()
    hurry(tracker)  # as abort() does on Ctrl-C
    try:
        tracker.log_epoch(run, 0, {"val_loss": 1.0})  # hangs in the tracker: returns after HURRY_S
        with pytest.raises(TrackingLost, match=r"no answer within 1\.5 s"):
            check_tracking(tracker)
    finally:
        inner.release.set()


def test_the_guard_is_found_through_wrappers() -> None:
    class Tap:  # as the CLI's EpochTap: a tracker in .tracker
        def __init__(self, tracker: object) -> None:
            self.tracker = tracker

    inner = Dying()
    tracker = _guarded(inner, "stop")
    inner.die.set()
    tracker.log_epoch(tracker.start_trial("p", 1, {}), 0, {})
    with pytest.raises(TrackingLost):
        check_tracking(Tap(tracker))
    assert tracking_note(Tap(NullTracker())) is None


def test_only_remote_uris_are_guarded_and_mlflow_http_is_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in MLFLOW_HTTP:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")  # the user's own value wins
    bound_mlflow_http()
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == MLFLOW_HTTP["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]

    class Spec:
        tracking_uri, storage, tracking_failure = "sqlite:///mlruns/mlflow.db", "sqlite:///s.db", "stop"

    local = NullTracker()
    assert guard(Spec(), lambda: local) is local  # type: ignore[arg-type]


def test_a_server_gone_before_the_study_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    class Spec:
        tracking_uri, storage, tracking_failure = URI, "sqlite:///s.db", "stop"

    def make() -> NullTracker:
        raise ConnectionError("Connection refused")

    with pytest.raises(TrackingLost, match="before|stopped answering"):
        guard(Spec(), make)  # type: ignore[arg-type]
    Spec.tracking_failure = "continue"
    tracker = guard(Spec(), make)  # type: ignore[arg-type]
    assert tracking_note(tracker) is not None


def test_tracking_failure_is_checked_with_the_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("name: s\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n"
                    "tracking_failure: ignore\n")
    with pytest.raises(ConfigError, match=r"tracking_failure must be one of: stop, continue; got 'ignore'"):
        load_config(path)
    path.write_text(path.read_text().replace("ignore", "continue"))
    assert load_config(path).tracking_failure == "continue"
