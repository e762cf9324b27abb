"""Inside a running trial: the epoch line (on a terminal and off it), the tracker tap and the ETA."""

from __future__ import annotations

import io

import optuna
import pytest
from rich.console import Console

from droptune.commands import _progress
from droptune.commands._live import EpochTap, LiveTrials
from droptune.commands._progress import TrialProgress
from droptune.tracking import NullTracker

optuna.logging.set_verbosity(optuna.logging.WARNING)
RECORD = {"val_loss": 0.31214, "overfit_gap": 0.04118, "train_loss": 0.5}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress_on(console: Console, *, total: int = 2, max_epochs: int = 10, epoch_line_s: float = 10.0):
    clock = Clock()
    progress = TrialProgress(
        name="s", total=total, console=console, metric="val_loss", max_epochs=max_epochs, epoch_line_s=epoch_line_s,
        clock=clock,
    )
    return progress, clock


def test_the_tap_passes_every_call_on_and_tells_the_listener_each_epoch_with_its_trial():
    calls, heard = [], []

    class Recording(NullTracker):
        def log_epoch(self, run_id, epoch, metrics):
            calls.append((run_id, epoch, dict(metrics)))

    tap = EpochTap(Recording(), listener=lambda number, epoch, record: heard.append((number, epoch, record["val_loss"])))
    parent = tap.study_run()
    run = tap.start_trial(parent, 7, {})
    tap.log_epoch(run, 0, RECORD)
    tap.log_epoch(run, 1, RECORD)
    tap.end_trial(run, "complete")
    tap.log_epoch(run, 2, RECORD)  # after its end (never happens): logged, not shown
    assert [c[:2] for c in calls] == [(run, 0), (run, 1), (run, 2)]
    assert heard == [(7, 0, 0.31214), (7, 1, 0.31214)]
    assert tap.keeps_artifacts is False and tap.runs_url() is None


def test_a_failing_listener_never_fails_the_trial():
    def broken(number, epoch, record):
        raise RuntimeError("display broke")

    tap = EpochTap(NullTracker(), listener=broken)
    tap.log_epoch(tap.start_trial(tap.study_run(), 0, {}), 0, RECORD)  # no exception


def test_live_trials_count_epochs_done_as_fractions_of_a_trial():
    live = LiveTrials(max_epochs=10)
    live.record(0, 4, RECORD)  # epoch 5 of 10
    live.record(1, 19, RECORD)  # past max_epochs (never happens): a whole trial at most
    assert live.fraction() == pytest.approx(1.5)
    live.drop([1])
    assert live.fraction() == pytest.approx(0.5) and len(live) == 1


def test_the_line_of_a_population_names_its_best_member_by_the_objective():
    live = LiveTrials(max_epochs=20, metric="val_acc", maximize=True)
    live.record(3, 2, {"val_loss": 0.5, "val_acc": 0.8, "overfit_gap": 0.1})
    live.record(4, 2, {"val_loss": 0.4, "val_acc": 0.9, "overfit_gap": 0.2})
    assert live.line() == "2 trials running · epoch 3/20 · best val_acc 0.9 (trial 4, gap 0.2000)"


def test_off_a_terminal_an_epoch_line_only_comes_after_a_quiet_spell():
    buffer = io.StringIO()
    progress, clock = progress_on(Console(file=buffer, force_terminal=False, width=200), epoch_line_s=10.0)
    progress.start(optuna.create_study(study_name="s"))
    clock.now += 4
    progress.epoch(0, 0, RECORD)  # 4 s after the start: too soon, nothing
    assert buffer.getvalue() == ""
    clock.now += 8
    progress.epoch(0, 1, RECORD)  # 12 s of silence: a line
    clock.now += 1
    progress.epoch(0, 2, RECORD)  # 1 s after that line: nothing
    lines = buffer.getvalue().splitlines()
    assert lines == ["s: trial 0 · epoch 2/10 · val_loss 0.3121 · gap 0.0412 · ETA 1:48"]  # 12 s for 0.2 trial, 1.8 left


def test_on_a_terminal_the_epoch_line_is_drawn_under_the_bar_and_gone_when_it_ends():
    buffer = io.StringIO()
    progress, _ = progress_on(Console(file=buffer, force_terminal=True, width=160))
    progress.start(optuna.create_study(study_name="s"))
    progress.epoch(5, 1, RECORD)
    drawn = buffer.getvalue()
    assert "trial 5 · epoch 2/10 · val_loss 0.3121 · gap 0.0412" in drawn
    progress.stop()
    assert "epoch 2/10" not in buffer.getvalue()[len(drawn) :]  # the last frame has no running trial


def test_the_eta_counts_down_between_epochs_and_is_re_estimated_at_each():
    progress, clock = progress_on(Console(file=io.StringIO(), force_terminal=False), total=2, max_epochs=10)
    progress.start(optuna.create_study(study_name="s"))
    assert progress.eta() == "-"  # no epoch yet
    clock.now += 10
    progress.epoch(0, 0, RECORD)  # 10 s for 1/10 of a trial; 1.9 trials left
    assert progress.eta() == "3:10"
    clock.now += 15  # the next epoch is slow: the ETA still does not grow
    assert progress.eta() == "2:55"
    clock.now += 15
    progress.epoch(0, 1, RECORD)  # 40 s for 0.2 trial: re-estimated
    assert progress.eta() == "6:00"


def test_a_finished_trial_leaves_the_live_line_and_late_records_are_ignored():
    study = optuna.create_study(study_name="s")
    progress, _ = progress_on(Console(file=io.StringIO(), force_terminal=False))
    progress.start(study)
    trial = study.ask()
    progress.epoch(trial.number, 0, RECORD)
    study.tell(trial, 0.3)
    progress.update(study)
    progress.epoch(trial.number, 1, RECORD)  # a record that arrives after the trial's end
    assert len(progress.live) == 0 and progress.live.line() == ""


def _tune(tmp_path, monkeypatch, capsys, *extra: str) -> list[str]:
    from droptune.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_progress, "EPOCH_LINE_S", 0.0)  # every epoch prints its line
    (tmp_path / "tiny.yaml").write_text(
        "name: live\nmodel: {class_path: droptune.testing.TinyModule}\n"
        "data: {class_path: droptune.testing.TinyDataModule}\n"
        "search: {n_trials: 2}\ntrainer: {max_epochs: 2, early_stopping_patience: null}\ntracking_uri: none\n"
    )
    assert main(["tune", "tiny.yaml", "--no-confirm", *extra]) == 0
    return capsys.readouterr().err.splitlines()


def test_a_real_tune_shows_each_epoch_of_each_trial(tmp_path, monkeypatch, capsys):
    lines = _tune(tmp_path, monkeypatch, capsys)
    assert lines[0] == "droptune: loading study live (tiny.yaml) …"
    for number in range(2):
        for epoch in (1, 2):
            assert any(
                line.startswith(f"live: trial {number} · epoch {epoch}/2 · val_loss ") and " · gap " in line
                for line in lines
            ), lines


def test_a_packed_tune_shows_the_population_s_epochs(tmp_path, monkeypatch, capsys):
    lines = _tune(tmp_path, monkeypatch, capsys, "--pack", "2", "--accelerator", "cpu")
    for epoch in (1, 2):
        assert any(line.startswith(f"live: 2 trials running · epoch {epoch}/2 · best val_loss ") for line in lines), lines


def test_the_launcher_of_workers_reads_the_running_trials_epochs_from_the_study():
    study = optuna.create_study(study_name="s")
    buffer = io.StringIO()
    clock = Clock()
    progress = TrialProgress(
        name="s", total=2, console=Console(file=buffer, force_terminal=False, width=200), metric="val_loss",
        max_epochs=10, epoch_line_s=0.0, poll=True, clock=clock,
    )
    progress.start(study)
    trial = study.ask()  # running in another process
    progress.update(study)  # no epoch reported yet: nothing
    trial.report(0.5, 0)
    trial.report(0.3, 1)
    clock.now += 20
    progress.update(study)
    progress.update(study)  # nothing new: not printed again
    assert buffer.getvalue().splitlines() == ["s: trial 0 · epoch 2/10 · val_loss 0.3 · ETA 3:00"]
    study.tell(trial, 0.3)
    progress.update(study)
    assert len(progress.live) == 0
