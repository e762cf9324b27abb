"""The extension points, used as docs/architecture.md says: a toy tracker and a toy executor,
each added with one module (here, this file) and one registry line, run a tiny study."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from droptune.api import run_tune
from droptune.config import StudySpec, load_config
from droptune.exceptions import ConfigError
from droptune.record import RATES_ATTR, TrialResult
from droptune.space import SearchSpace
from droptune.tracking import TRACKERS, tracker_for
from droptune.tuning import prepare_study
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning.executors import EXECUTORS, executor_kind, start_trial


class ToyTracker:
    """Keeps every run in memory (no droptune import needed to write one: it is a Protocol)."""

    keeps_artifacts = False
    made: list[ToyTracker] = []

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.trials: dict[str, dict] = {}  # run id -> {"number", "params", "epochs", "state"}
        self.ended_study: str | None = None
        ToyTracker.made.append(self)

    def study_run(self, run_id: str | None = None) -> str:
        return run_id or "toy-parent"

    def has_study_run(self, run_id: str) -> bool:
        return run_id == "toy-parent"

    def start_trial(self, parent_run_id: str, number: int, params: Mapping[str, str]) -> str:
        run_id = f"toy-{number}"
        self.trials[run_id] = {"number": number, "params": dict(params), "epochs": [], "state": None}
        return run_id

    def log_epoch(self, run_id: str, epoch: int, metrics: Mapping[str, float]) -> None:
        self.trials[run_id]["epochs"].append((epoch, dict(metrics)))

    def end_trial(self, run_id: str, state: str, *, summary=None, reason=None) -> None:
        self.trials[run_id]["state"] = state

    def close_trial_run(self, parent_run_id: str, number: int, reason: str) -> None:
        pass

    def close_finished_runs(self, parent_run_id: str, states: Mapping[int, str]) -> int:
        return 0

    def log_artifact(self, run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_study_summary(self, run_id: str, metrics: Mapping[str, float]) -> None:
        pass

    def describe_study(self, run_id: str, *, params, note: str, report: str | None = None) -> None:
        pass

    def end_study(self, run_id: str, status: str = "FINISHED") -> None:
        self.ended_study = status

    def flush(self) -> None:
        pass

    def runs_url(self, host: str = "127.0.0.1", port: int = 5000) -> str | None:
        return None


class ToyExecutor:
    """Trains nothing: each trial's value is the sum of its rates, two trials per step."""

    capacity = 2
    ran: list[int] = []

    def __init__(self, spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> None:
        self.spec, self.space, self.recorder = spec, space, recorder
        self.trials: list[tuple[optuna.Trial, float]] = []

    def running(self) -> list[optuna.Trial]:
        return [t for t, _ in self.trials]

    def start(self, trials: list[optuna.Trial]) -> None:
        for trial in trials:  # the start every executor shares: seed, build, suggest, record
            _, _, rates = start_trial(trial, self.spec, self.space, self.recorder)
            self.trials.append((trial, sum(rates.values())))

    def step(self) -> list[tuple[optuna.Trial, TrialResult]]:
        done, self.trials = self.trials, []
        ended = []
        for trial, value in done:
            record = {"epoch": 0.0, "val_loss": value, "train_loss_eval": value, "overfit_gap": 0.0}
            self.recorder.epoch(trial, 0, record)
            ToyExecutor.ran.append(trial.number)
            ended.append((trial, TrialResult("complete", value, history=[record])))
        return ended

    def close(self) -> None:
        pass


@pytest.fixture
def toys(monkeypatch: pytest.MonkeyPatch):
    """Register both toys (one registry line each), and unregister them afterwards."""
    monkeypatch.setitem(TRACKERS, "toy", ToyTracker)
    monkeypatch.setitem(EXECUTORS, "toy", ToyExecutor)
    monkeypatch.setattr(ToyTracker, "made", [])
    monkeypatch.setattr(ToyExecutor, "ran", [])
    yield
    # monkeypatch removes them on teardown; the registries are as they were


def _spec(folder: Path, executor: str = "toy") -> StudySpec:
    path = folder / "toy.yaml"
    path.write_text(textwrap.dedent(f"""
        name: toy
        model: droptune.testing.TinyModule
        data: droptune.testing.TinyDataModule
        search: {{n_trials: 5, sampler: random, pruner: none, executor: {executor}}}
        tracking_uri: toy://demo
        seed: 3
    """))
    return load_config(path)


def test_a_toy_tracker_and_executor_from_the_registries_run_a_study(in_tmp: Path, toys) -> None:
    spec = _spec(in_tmp)
    assert executor_kind(spec) == "toy"
    assert isinstance(tracker_for(spec), ToyTracker)

    study = run_tune(spec, confirm=False)

    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    # The toy executor ran every trial of the study, and each value is its sum of rates.
    assert sorted(ToyExecutor.ran) == [t.number for t in trials]
    for trial in trials:
        assert trial.value == pytest.approx(sum(trial.user_attrs[RATES_ATTR].values()))
    # The toy tracker (the one the study used) saw each trial: opened, its epoch, its end.
    tracker = ToyTracker.made[-1]
    seen = {run["number"]: run for run in tracker.trials.values()}
    assert sorted(seen) == [t.number for t in trials]
    for run in seen.values():
        assert run["state"] == "complete"
        assert [epoch for epoch, _ in run["epochs"]] == [0]
        assert any(name.startswith("rate.") for name in run["params"])
    assert tracker.ended_study == "FINISHED"


def test_an_unregistered_executor_is_refused_before_anything_is_written(in_tmp: Path, toys) -> None:
    spec = _spec(in_tmp, executor="nosuch")
    with pytest.raises(ConfigError, match=r"search.executor 'nosuch' is not a registered executor; choose one of: .*toy"):
        prepare_study(spec)
    assert not (in_tmp / "studies").exists()  # no store was created
