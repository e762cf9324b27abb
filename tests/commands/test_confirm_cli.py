"""``droptune confirm``, then ``export`` and ``recommend``, through droptune.cli.main."""

from __future__ import annotations

import textwrap

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from droptune.cli import main
from droptune.record import confirmed_finalists, rank_trials
from droptune.tuning import _budget

STORAGE = "sqlite:///studies/droptune.db"


def write_study(folder):
    path = folder / "tiny.yaml"
    path.write_text(
        textwrap.dedent(
            """
            name: tiny
            model: {class_path: droptune.testing.TinyModule}
            data: {class_path: droptune.testing.TinyDataModule}
            search: {n_trials: 4, sampler: random, pruner: none, granularity: site}
            trainer: {max_epochs: 2, early_stopping_patience: null, accelerator: cpu}
            """
        )
    )
    return path


def test_confirm_then_export_and_recommend_use_the_confirmed_best(in_tmp, capsys):
    study_file = write_study(in_tmp)
    assert main(["tune", str(study_file)]) == 0
    assert "tiny.confirm" not in optuna.get_all_study_names(STORAGE)  # 4 trials: too few to confirm by default
    capsys.readouterr()
    assert main(["confirm", str(study_file), "--top", "2", "--seeds", "2"]) == 0
    shown = capsys.readouterr().out
    assert "confirmed finalists of tiny" in shown and "kept: trial" in shown

    finalists = confirmed_finalists(optuna.load_study(study_name="tiny", storage=STORAGE).user_attrs)
    assert len(finalists) == 2 and all(f["n"] == 2 for f in finalists)
    assert main(["export", str(study_file), "-o", "best.yaml"]) == 0
    exported = yaml.safe_load((in_tmp / "best.yaml").read_text())
    assert exported["trial"] == finalists[0]["trial"] and exported["confirmed"]["n"] == 2
    assert "confirmed over 2 fresh seeds" in capsys.readouterr().err
    assert main(["recommend", str(study_file)]) == 0
    assert f"the best is trial {finalists[0]['trial']}" in capsys.readouterr().out
    # the search's MLflow parent run shows the kept configuration's mean; the confirmation has its own runs
    client = MlflowClient(f"sqlite:///{in_tmp / 'mlruns' / 'mlflow.db'}")
    parent = client.get_run(optuna.load_study(study_name="tiny", storage=STORAGE).user_attrs["mlflow_parent_run_id"])
    assert parent.data.metrics["confirmed_value_mean"] == pytest.approx(finalists[0]["value_mean"])
    confirm_runs = client.search_runs([client.get_experiment_by_name("tiny.confirm").experiment_id])
    assert len([r for r in confirm_runs if r.data.tags.get("droptune.role") == "trial"]) == 4


def test_bad_seeds_exit_2_with_one_message(in_tmp, capsys):
    study_file = write_study(in_tmp)
    assert main(["tune", str(study_file), "--n-trials", "2"]) == 0
    assert main(["confirm", str(study_file), "--seeds", "1"]) == 2
    assert "--seeds must be an integer >= 2" in capsys.readouterr().err
    assert "tiny.confirm" not in optuna.get_all_study_names(STORAGE)


def test_tune_confirms_inside_its_n_trials_once_the_study_is_large_enough(in_tmp, monkeypatch, capsys):
    monkeypatch.setattr(_budget, "MIN_TRIALS_TO_CONFIRM", 4)  # the rule, at a size a test can run
    study_file = write_study(in_tmp)
    assert main(["tune", str(study_file), "--n-trials", "18"]) == 0
    search = optuna.load_study(study_name="tiny", storage=STORAGE)
    retrains = optuna.load_study(study_name="tiny.confirm", storage=STORAGE).trials
    # 18 trials at most: 18 - (3 + 2) x 2 searched, then the top 3 and both baselines retrained twice each.
    assert len(search.trials) == 18 - (_budget.TOP + _budget.BASELINES) * _budget.SEEDS
    finalists = confirmed_finalists(search.user_attrs)
    assert all(f["n"] == _budget.SEEDS for f in finalists)
    assert len(retrains) == len(finalists) * _budget.SEEDS <= (_budget.TOP + _budget.BASELINES) * _budget.SEEDS
    # The no-dropout and prior trials are retrained whatever their rank, and named as such.
    assert {f.get("baseline") for f in finalists} >= {"no_dropout", "prior"}
    ranked = [t.number for t in rank_trials(search)]
    assert set(ranked[: _budget.TOP]) <= {f["trial"] for f in finalists}
    out = capsys.readouterr().out
    assert "confirmed: the best is trial" in out and "(no dropout)" in out
    assert main(["tune", str(study_file), "--n-trials", "18"]) == 0  # resumed: nothing more runs
    assert len(optuna.load_study(study_name="tiny.confirm", storage=STORAGE).trials) == len(retrains)


def test_no_confirm_gives_the_whole_budget_to_the_search(in_tmp, monkeypatch):
    monkeypatch.setattr(_budget, "MIN_TRIALS_TO_CONFIRM", 4)
    study_file = write_study(in_tmp)
    assert main(["tune", str(study_file), "--n-trials", "6", "--no-confirm"]) == 0
    assert len(optuna.load_study(study_name="tiny", storage=STORAGE).trials) == 6
    assert "tiny.confirm" not in optuna.get_all_study_names(STORAGE)
