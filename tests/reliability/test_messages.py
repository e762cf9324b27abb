"""Messages that said the wrong thing: an empty validation set, a report of a study with no
complete trial, and Ctrl-C or SIGTERM claiming a trial was recorded when none was."""

from __future__ import annotations

import dataclasses

import pytest
from _reliability_kit import VALID, write
from _workers_kit import load_trials, reset_mlflow_stores
from optuna.trial import TrialState

import droptune.cli
from droptune._signals import TrialsStopped
from droptune.cli import main


def test_an_empty_validation_set_is_named_as_such(refused, project):
    write(project, VALID.replace("droptune.testing.TinyDataModule", "_bad_models.EmptyValData"))
    message = refused(["tune", "study.yaml"], r"error: study\.yaml: the validation set of _bad_models\.EmptyValData "
                      r"is empty \(val_dataloader gives no batch\)")
    assert "never logs" not in message


def test_report_on_a_study_with_no_complete_trial_is_an_error(refused, project):
    from droptune.config import load_config
    from droptune.tuning import prepare_study

    reset_mlflow_stores()
    prepare_study(load_config(project / "study.yaml"))  # the study exists; its prior trial waits
    trials = load_trials("tiny", f"sqlite:///{project}/studies/droptune.db")
    assert [t.state for t in trials] == [TrialState.WAITING]
    refused(["report", "study.yaml"], r"error: study 'tiny' has no complete trial to report on "
            r"\(trials: 0 running, 0 complete, 0 pruned, 0 fail, 1 waiting\); run `droptune tune` on it")
    assert not (project / "report.html").exists()
    assert [t.state for t in load_trials("tiny", f"sqlite:///{project}/studies/droptune.db")] == [TrialState.WAITING]


@pytest.mark.parametrize(
    ("command", "raised", "expected"),
    [
        ("recommend", KeyboardInterrupt(), "interrupted."),
        ("tune", KeyboardInterrupt(), "interrupted; run the same command to resume."),
        ("tune", TrialsStopped(0), "interrupted: no trial of this process was running; run the same command to resume."),
        ("tune", TrialsStopped(1), "interrupted: the running trial was recorded as failed; run the same command to resume."),
        ("worker", TrialsStopped(3), "interrupted: the 3 running trials were recorded as failed; run the same command to resume."),
    ],
    ids=["outside-a-study", "before-any-trial", "no-trial-running", "one-trial", "three-trials"],
)
def test_an_interrupt_claims_recorded_trials_only_when_there_were_some(project, monkeypatch, capsys, command, raised, expected):
    def interrupted(args: object) -> int:
        raise raised

    commands = dict(droptune.cli.COMMANDS)
    commands[command] = dataclasses.replace(commands[command], handler=interrupted)
    monkeypatch.setattr(droptune.cli, "COMMANDS", commands)
    monkeypatch.setattr(droptune.cli.err, "width", 100_000)
    argv = [command, "study.yaml"] if command != "recommend" else ["recommend", "study.yaml"]
    assert main(argv) == 130
    assert capsys.readouterr().err.strip() == expected
