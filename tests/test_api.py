"""``droptune.tune()`` and ``droptune tune`` run one use case: same trials, confirmation, export."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest

import droptune
from droptune.cli import main
from droptune.export import export_best
from droptune.record import confirmed_finalists
from droptune.tuning import _budget

STUDY = textwrap.dedent(
    """
    name: same
    model: {class_path: droptune.testing.TinyModule}
    data: {class_path: droptune.testing.TinyDataModule}
    search: {n_trials: 18, sampler: random, pruner: none, granularity: site}
    trainer: {max_epochs: 2, early_stopping_patience: null, accelerator: cpu}
    tracking_uri: none
    """
)


def _run(folder: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> optuna.Study:
    folder.mkdir()
    (folder / "same.yaml").write_text(STUDY)
    monkeypatch.chdir(folder)
    if how == "cli":
        assert main(["tune", "same.yaml"]) == 0
    else:
        droptune.tune("same.yaml")
    return optuna.load_study(study_name="same", storage="sqlite:///studies/droptune.db")


def test_the_python_api_and_the_cli_run_the_same_search_confirmation_and_export(tmp_path, monkeypatch):
    monkeypatch.setattr(_budget, "MIN_TRIALS_TO_CONFIRM", 4)
    cli = _run(tmp_path / "cli", "cli", monkeypatch)
    api = _run(tmp_path / "api", "api", monkeypatch)
    assert [t.params for t in cli.trials] == [t.params for t in api.trials]
    assert [t.value for t in cli.trials] == pytest.approx([t.value for t in api.trials])
    # the confirmation's share of n_trials
    assert len(cli.trials) == 18 - (_budget.TOP + _budget.BASELINES) * _budget.SEEDS
    cli_final, api_final = confirmed_finalists(cli.user_attrs), confirmed_finalists(api.user_attrs)
    assert [f["trial"] for f in cli_final] == [f["trial"] for f in api_final] and len(cli_final) >= _budget.TOP
    assert export_best(cli)["rates"] == export_best(api)["rates"]
