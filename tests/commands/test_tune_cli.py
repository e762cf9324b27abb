"""``droptune tune`` through droptune.cli.main: what n_trials counts, ``--more``, the end-of-run summary."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import optuna
import pytest

from droptune.cli import main

STORAGE = "sqlite:///studies/droptune.db"


def study_file(folder: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: tiny
            model: {class_path: droptune.testing.TinyModule}
            data: {class_path: droptune.testing.TinyDataModule}
            search: {n_trials: 3, sampler: random, pruner: none, granularity: site}
            trainer: {max_epochs: 1, early_stopping_patience: null, accelerator: cpu}
            tracking_uri: none
            """
        )
    )
    return path


def finished() -> int:
    return len(optuna.load_study(study_name="tiny", storage=STORAGE).get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


def words(text: str) -> str:
    return " ".join(text.split())


def test_n_trials_is_a_total_and_more_adds_to_what_is_finished(in_tmp, capsys):
    path = str(study_file(in_tmp))
    assert main(["tune", path]) == 0
    assert finished() == 3
    capsys.readouterr()

    assert main(["tune", path, "--n-trials", "2"]) == 0  # fewer than it holds: nothing runs, and it says why
    assert finished() == 3
    err = words(capsys.readouterr().err)
    assert "resuming with 3 finished trials; n_trials 2 is the study's total, not new trials: nothing to run" in err
    assert "`--more N` runs N more" in err

    assert main(["tune", path, "--more", "2"]) == 0
    assert finished() == 5
    assert "resuming with 3 finished trials; n_trials 5 is the study's total: 2 to run" in words(capsys.readouterr().err)


def test_the_end_of_run_summary_is_one_table_and_one_sentence(in_tmp, capsys):
    assert main(["tune", str(study_file(in_tmp))]) == 0
    out = words(capsys.readouterr().out)
    best = optuna.load_study(study_name="tiny", storage=STORAGE).best_trial.number
    assert f"dropout rate per layer type: best = trial {best}; rate = the median from the best 3 of 3" in out
    assert "`droptune export" in out and "-o rates.yaml` writes the `best` column" in out
    assert "`--recommended` the `rate` column" in out
    assert "Which figure" not in out and "best rates (trial" not in out  # no second table, no paragraph
    assert len(re.findall(r"layer type", out)) == 2  # the title and the one table's header


def test_help_states_what_n_trials_counts(capsys):
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    text = words(capsys.readouterr().out)
    assert "the study's total" in text and "those of earlier runs included" in text
    assert "--more N run N trials more than the study already holds finished" in text


def test_more_and_n_trials_exclude_each_other(in_tmp, capsys):
    assert main(["tune", str(study_file(in_tmp)), "--more", "1", "--n-trials", "4"]) == 2
    assert "give one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "x.yaml", "--more", "0"])
