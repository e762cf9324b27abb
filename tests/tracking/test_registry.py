"""Trackers by registry: the tracking URI's scheme picks the tracker; offloading wraps any of them."""

from __future__ import annotations

import pytest

from droptune.config import spec_from_dict
from droptune.exceptions import ConfigError
from droptune.tracking import (
    TRACKERS,
    MlflowTracker,
    NullTracker,
    OffloadedTracker,
    build_tracker,
    tracker_for,
)


def _spec(tracking_uri: str, pack: int = 1):
    return spec_from_dict({
        "name": "reg", "model": {"class_path": "droptune.models.MLP"},
        "data": {"class_path": "droptune.data.DigitsDataModule"}, "search": {"pack": pack},
        "tracking_uri": tracking_uri,
    })


def test_the_scheme_picks_the_registered_tracker(tmp_path, monkeypatch):
    assert type(tracker_for(_spec("none"))) is NullTracker
    assert type(tracker_for(_spec("none", pack=4))) is NullTracker  # nothing to offload
    assert type(tracker_for(_spec(f"sqlite:///{tmp_path / 'mlflow.db'}"))) is MlflowTracker

    made = []
    monkeypatch.setitem(TRACKERS, "toy", lambda uri, experiment: made.append((uri, experiment)) or NullTracker())
    tracker_for(_spec("toy://somewhere"))
    assert made == [("toy://somewhere", "reg")]


def test_an_unknown_scheme_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"tracking_uri 'foo://bar': no tracker for scheme 'foo'; use one of: .*none.*sqlite"):
        build_tracker("foo://bar", "e")


def test_offloading_wraps_a_tracker_that_is_not_mlflow():
    # The child process builds its own tracker from the registry: were it an MlflowTracker, the
    # URI "none" would fail there (MLflow refuses it) and flush would raise.
    tracker = OffloadedTracker(tracking_uri="none", experiment="wrapped")
    assert type(tracker.tracker) is NullTracker and tracker.keeps_artifacts is False
    parent = tracker.study_run()
    handle = tracker.start_trial(parent, 0, {"rate.fc": "0.1"})
    tracker.log_epoch(handle, 0, {"val_loss": 1.0})
    tracker.end_trial(handle, "complete", summary={"best_val_loss": 1.0})
    tracker.flush()  # the child applied every write, without error
    assert tracker._child is not None and tracker._child.process.poll() is None
    tracker.end_study(parent)
    assert tracker._child is None
