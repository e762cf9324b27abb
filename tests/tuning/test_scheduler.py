"""The scheduler on its own: an executor that trains nothing shows what the loop decides
(exactly n_trials, the failure policy, interruption, resume) for any executor."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from droptune.config import StudySpec, load_config
from droptune.exceptions import StudyError
from droptune.record import TrialResult
from droptune.space import SearchSpace
from droptune.tracking import NullTracker
from droptune.tuning import EXECUTORS, prepare_study, run_worker
from droptune.tuning._recorder import TrialRecorder
from droptune.tuning.executors import executor_kind


class InstantExecutor:
    """Takes up to 3 trials and ends them all at the next step, as ``outcome`` says (no training)."""

    capacity = 3
    outcome = "complete"
    interrupt_at_step: int | None = None
    started: list[int] = []

    def __init__(self, spec: StudySpec, space: SearchSpace, recorder: TrialRecorder) -> None:
        self.recorder = recorder
        self.trials: list[optuna.Trial] = []
        self.steps = 0

    def running(self) -> list[optuna.Trial]:
        return list(self.trials)

    def start(self, trials: list[optuna.Trial]) -> None:
        assert len(self.trials) + len(trials) <= self.capacity
        for trial in trials:
            rate = trial.suggest_float("fc", 0.0, 0.5)
            self.recorder.open(trial, {"fc": rate}, {"fc": "dense"})
            InstantExecutor.started.append(trial.number)
        self.trials += trials

    def step(self) -> list[tuple[optuna.Trial, TrialResult]]:
        self.steps += 1
        if self.steps == self.interrupt_at_step:
            raise KeyboardInterrupt
        done, self.trials = self.trials, []
        history = [{"epoch": 0.0, "val_loss": 1.0, "overfit_gap": 0.1}]
        if self.outcome == "failed":
            return [(t, TrialResult("failed", reason="boom", history=history)) for t in done]
        if self.outcome == "five in a row fail":  # a failing region of rates, not a broken model
            return [(t, TrialResult("failed", reason="boom", history=history) if 6 <= t.number <= 10 else
                     TrialResult("complete", 1.0 + t.number, history=history)) for t in done]
        return [(t, TrialResult("complete", 1.0 + t.number, history=history)) for t in done]

    def close(self) -> None:
        pass


@pytest.fixture
def spec(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> StudySpec:
    monkeypatch.setitem(EXECUTORS, "fit", InstantExecutor)
    monkeypatch.setattr(InstantExecutor, "started", [])
    path = in_tmp / "instant.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: instant
            model: droptune.testing.TinyModule
            data: droptune.testing.TinyDataModule
            search: {n_trials: 7, sampler: random, pruner: none}
            """
        )
    )
    return load_config(path)


def _states(spec: StudySpec) -> list[TrialState]:
    return [t.state for t in optuna.load_study(study_name=spec.name, storage=spec.storage).get_trials()]


def test_the_executor_is_a_lookup_and_the_study_stops_at_exactly_n_trials(spec: StudySpec) -> None:
    lifecycle = prepare_study(spec, tracker=NullTracker())
    counts = run_worker(spec, study=lifecycle.study, tracker=lifecycle.tracker)
    assert counts.complete == 7 and _states(spec) == [TrialState.COMPLETE] * 7
    assert InstantExecutor.started == list(range(7))  # batches of 3, 3, then the 1 left
    # Run again (resume): the study already holds n_trials, nothing starts.
    assert run_worker(spec, tracker=NullTracker()).complete == 7
    assert len(_states(spec)) == 7
    assert executor_kind(spec) == "fit"
    assert executor_kind(replace(spec, search=replace(spec.search, pack=4))) == "packed"


def test_a_worker_whose_trials_all_fail_stops(spec: StudySpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InstantExecutor, "outcome", "failed")
    prepare_study(spec, tracker=NullTracker())
    with pytest.raises(StudyError, match="6 of the last 6 trials failed; the last one because: boom"):
        run_worker(spec, tracker=NullTracker())
    assert _states(spec) == [TrialState.FAIL] * 6  # two batches of 3 ran, all recorded; no third started


def test_five_failures_in_a_row_among_successes_do_not_stop_the_study(spec: StudySpec, monkeypatch: pytest.MonkeyPatch) -> None:
    # Five failures in a row used to end such a study; the rule now judges the share that fails
    # (5 of the last 12 here), so the study goes on to its n_trials.
    monkeypatch.setattr(InstantExecutor, "outcome", "five in a row fail")
    prepare_study(spec, tracker=NullTracker())
    counts = run_worker(spec, tracker=NullTracker())
    assert counts.complete == 7 and counts.failed == 5


def test_an_interrupted_step_fails_the_running_trials_and_propagates(spec: StudySpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(InstantExecutor, "interrupt_at_step", 2)
    prepare_study(spec, tracker=NullTracker())
    with pytest.raises(KeyboardInterrupt):
        run_worker(spec, tracker=NullTracker())
    trials = optuna.load_study(study_name=spec.name, storage=spec.storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL] * 3
    assert all(t.user_attrs["fail_reason"].startswith("interrupted") for t in trials[3:])
    monkeypatch.setattr(InstantExecutor, "interrupt_at_step", None)
    assert run_worker(spec, tracker=NullTracker()).complete == 7  # resumes: failed trials are redone


def test_parallel_workers_ask_with_the_constant_liar_a_packed_population_without() -> None:
    from droptune.config import spec_from_dict
    from droptune.tuning._factories import sampler_for

    def spec(pack, sampler="tpe"):
        return spec_from_dict({"name": "s", "model": {"class_path": "droptune.models.MLP"},
                               "data": {"class_path": "droptune.data.DigitsDataModule"},
                               "search": {"pack": pack, "sampler": sampler}})

    # Workers ask one trial each while others run: running trials count as bad ones, so the
    # workers spread out. A population asks K trials at once, all against the same results:
    # there the liar pushes the batch off the best region (benchmarks/results/packed_search.md).
    assert sampler_for(spec(1), 0)._constant_liar is True
    assert sampler_for(spec(8), 0)._constant_liar is False
    assert sampler_for(spec("auto"), 0)._constant_liar is False
    assert isinstance(sampler_for(spec(8, "random"), 0), optuna.samplers.RandomSampler)
