"""Terminal feedback of ``droptune tune``: trial lines, status lines and the ETA, on and off a terminal."""

from __future__ import annotations

import io

import optuna
from optuna.trial import TrialState
from rich.console import Console

from droptune import record
from droptune.commands._progress import TrialProgress, trial_line

optuna.logging.set_verbosity(optuna.logging.WARNING)
TYPES = {"input_dropout": "input", "fc.1": "dense"}


def finish(study, value, *, state=TrialState.COMPLETE, reason=None):
    attrs = record.start_attrs({"input_dropout": 0.1, "fc.1": 0.4}, TYPES)
    attrs.update({record.GAP_ATTR: 0.05, record.EPOCHS_ATTR: 7})
    if reason:
        attrs[record.REASON_ATTR] = reason
    study.add_trial(
        optuna.trial.create_trial(
            value=value if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs=attrs,
            intermediate_values={0: 2.0, 1: 1.5},
        )
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain(total=4, period_s=30.0):
    buffer, clock = io.StringIO(), Clock()
    console = Console(file=buffer, force_terminal=False, width=100)
    return TrialProgress(name="s", total=total, console=console, metric="val_loss", period_s=period_s, clock=clock), buffer, clock


def test_off_a_terminal_each_finished_trial_is_one_plain_line():
    study = optuna.create_study(study_name="s")
    progress, buffer, clock = plain()
    progress.start(study)
    finish(study, 0.31)
    finish(study, None, state=TrialState.PRUNED)
    finish(study, None, state=TrialState.FAIL, reason="ValueError: bad batch\ntraceback...")
    progress.update(study)
    progress.update(study)  # nothing new: nothing printed twice
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "trial 0 complete · val_loss 0.31 · gap 0.0500 · input 0.100 dense 0.400 · 7 epochs · 0.0 s",
        "trial 1 pruned · val_loss 1.5 at epoch 1 · gap 0.0500 · input 0.100 dense 0.400 · 7 epochs · 0.0 s",
        "trial 2 failed · input 0.100 dense 0.400 · 0.0 s · reason: ValueError: bad batch",
    ]
    assert "\x1b[" not in buffer.getvalue()  # no colour codes or cursor moves in a log file


def test_best_follows_the_direction_and_skips_trials_over_max_gap():
    study = optuna.create_study(study_name="s", direction="maximize")
    progress, buffer, _ = plain(total=4, period_s=0.0)
    progress.start(study)
    finish(study, 0.7)
    over = study.ask()  # the best value, but its gap breaks max_gap: Optuna's best skips it
    over.set_constraint("gap", 0.2)
    study.tell(over, 0.9)
    finish(study, 0.8)
    progress.update(study)
    assert buffer.getvalue().splitlines()[-1].startswith("s: 3/4 finished (0 pruned, 0 failed) · best 0.8 ·")
    assert study.best_value == 0.8  # what the line must agree with


def test_status_lines_carry_counts_best_elapsed_and_eta():
    study = optuna.create_study(study_name="s")
    progress, buffer, clock = plain(total=4)
    progress.start(study)
    assert progress.eta() == "-"  # no trial finished in this run yet
    clock.now += 60
    finish(study, 0.5)
    finish(study, 0.4)
    progress.update(study)  # 60 s since start >= period: a status line follows the trial lines
    status = buffer.getvalue().splitlines()[-1]
    assert status == "s: 2/4 finished (0 pruned, 0 failed) · best 0.4 · elapsed 1:00 · ETA 1:00"
    clock.now += 10
    finish(study, 0.45)
    progress.update(study)  # 10 s since the last status: only the trial line
    assert buffer.getvalue().splitlines()[-1].startswith("trial 2 complete")
    progress.tick()  # what the timer calls every period
    assert buffer.getvalue().splitlines()[-1].endswith("elapsed 1:10 · ETA 0:23")


def test_a_failed_trial_gets_its_line_but_does_not_count_toward_n_trials():
    # Failed trials are redone, so "4/4 finished" must not be reached by failures.
    study = optuna.create_study(study_name="s")
    progress, buffer, clock = plain(total=4)
    progress.start(study)
    clock.now += 60
    finish(study, 0.5)
    for _ in range(3):
        finish(study, None, state=TrialState.FAIL, reason="RuntimeError: flaky")
    progress.update(study)
    assert sum(line.startswith("trial ") for line in buffer.getvalue().splitlines()) == 4
    assert progress.status().startswith("s: 1/4 finished (0 pruned, 3 failed)")
    assert progress.eta() == "3:00"  # one trial counted in 60 s, three left


def test_a_resumed_study_does_not_reprint_old_trials_and_its_eta_counts_this_run_only():
    study = optuna.create_study(study_name="s")
    finish(study, 0.5)
    finish(study, 0.6)
    progress, buffer, clock = plain(total=4)
    progress.start(study)
    assert buffer.getvalue() == "s: resuming with 2 finished trials; n_trials 4 is the study's total: 2 to run\n"
    clock.now += 100
    finish(study, 0.3)
    progress.update(study)
    assert "trial 2 complete" in buffer.getvalue() and "trial 0 " not in buffer.getvalue()
    assert progress.eta() == "1:40"  # one trial in 100 s, one left


def test_on_a_terminal_trial_lines_print_above_a_bar_with_an_eta():
    study = optuna.create_study(study_name="s")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    progress = TrialProgress(name="s", total=2, console=console, metric="val_loss")
    progress.start(study)
    finish(study, 0.31)
    progress.update(study)
    progress.stop()
    text = buffer.getvalue()
    assert "trial 0 complete · val_loss 0.31" in text
    assert "1/2" in text and "ETA" in text and "best 0.31" in text


def test_trial_line_of_a_trial_without_droptune_attributes_is_short():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=1.0))
    assert trial_line(study.trials[0]) == "trial 0 complete · objective 1 · 0.0 s"


def test_a_real_tune_with_stderr_not_a_terminal_prints_trial_and_status_lines(tmp_path, monkeypatch, capsys):
    from droptune.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        "name: tinyprog\nmodel: {class_path: droptune.testing.TinyModule}\n"
        "data: {class_path: droptune.testing.TinyDataModule}\n"
        "search: {n_trials: 3}\ntrainer: {max_epochs: 2, early_stopping_patience: null}\n"
    )
    assert main(["tune", "tiny.yaml"]) == 0
    captured = capsys.readouterr()
    err = captured.err
    lines = err.splitlines()
    # the summary: the `ui` command on a line of its own, as it can be copied
    assert f"  droptune ui tiny.yaml --tracking-uri sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}" in captured.out.splitlines()
    for number in range(3):
        assert any(line.startswith(f"trial {number} ") and "· 2 epochs ·" in line for line in lines), err
    assert any(line.startswith("tinyprog: 3/3 finished") and line.endswith("ETA 0:00") for line in lines), err
    assert "INFO" not in err and "\x1b[" not in err  # no library logs, no terminal control codes


def test_best_rates_table_collapses_sites_tied_to_one_rate():
    from droptune.commands._recommend import best_rates_table

    study = optuna.create_study()
    rates = {"input_dropout": 0.1, "fc.1": 0.4, "fc.4": 0.4, "fc.7": 0.25}
    types = {**TYPES, "fc.4": "dense", "fc.7": "dense"}
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs=record.start_attrs(rates, types)))
    buffer = io.StringIO()
    Console(file=buffer, width=100).print(best_rates_table(study.trials[0]))
    rows = [line.split("│")[1:4] for line in buffer.getvalue().splitlines() if line.count("│") == 4]
    cells = [[c.strip() for c in row] for row in rows]
    assert cells == [
        ["input_dropout", "input", "0.100"],
        ["fc.1, fc.4", "dense", "0.400"],
        ["fc.7", "dense", "0.250"],
    ]
