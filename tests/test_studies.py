"""The example study files: each loads, its model has the sites it promises, and one runs end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from droptune.cli import main
from droptune.config import load_config
from droptune.tuning._build import build, model_sites

STUDIES = sorted((Path(__file__).parents[1] / "studies").glob("*.yaml"))

# Layer types each built-in study is meant to exercise (README's table of built-in models).
EXPECTED_TYPES = {
    "digits_cnn": {"spatial", "dense"},
    "digits_mlp": {"input", "dense"},
    "digits_rnn": {"recurrent"},
    "digits_transformer": {"attention", "residual", "hidden"},
    "mnist1d_mlp": {"input", "dense"},
    "mnist1d_cnn": {"spatial", "dense"},
}


def test_every_study_file_is_listed_here():
    assert {p.stem for p in STUDIES} == set(EXPECTED_TYPES)


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_file_loads_and_model_has_its_sites(path):
    spec = load_config(path)
    model, data = build(spec)
    sites = model_sites(spec, model, data)
    assert EXPECTED_TYPES[path.stem] <= {s.layer_type for s in sites}
    assert len({s.name for s in sites}) == len(sites) >= 2


def test_builtin_study_runs_end_to_end(in_tmp):
    # A copy: the repository's own file keeps its stores in the repository (its project folder).
    study_file = Path(shutil.copy(Path(__file__).parents[1] / "studies" / "digits_cnn.yaml", in_tmp))
    assert main(["tune", str(study_file), "--n-trials", "2", "--max-epochs", "2", "--accelerator", "cpu"]) == 0
    study = optuna.load_study(study_name="digits-cnn", storage="sqlite:///studies/droptune.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    spatial = [n for n, t in study.trials[0].user_attrs["layer_types"].items() if t == "spatial"]
    assert spatial and set(study.trials[1].params) == set(study.trials[0].user_attrs["rates"])
    client = MlflowClient(f"sqlite:///{in_tmp / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digits-cnn")
    assert len(client.search_runs([experiment.experiment_id])) == 3  # parent + 2 trials
