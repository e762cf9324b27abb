"""``droptune recommend`` through droptune.cli.main."""

from __future__ import annotations

import json

import optuna
import pytest
import yaml

from droptune.cli import main
from droptune.recommend import recommend
from droptune.stores import open_study
from droptune.testing import add_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

STORAGE = "sqlite:///studies/droptune.db"
KEYS = {"layer_type", "recommended", "low", "high", "best", "prior", "importance", "n_trials", "sites"}
MLP = {"input_dropout": "input", "fc.1": "dense"}
CNN = {"conv.3": "spatial", "fc.1": "dense"}


def fill(name: str, types: dict[str, str], n: int, storage: str = STORAGE) -> None:
    study = optuna.create_study(study_name=name, storage=storage)
    for i in range(n):
        rates = {site: round(0.02 * i + 0.01 * j, 4) for j, site in enumerate(types)}
        add_trial(study, rates, 1.0 + 0.1 * i, layer_types=types)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """studies/droptune.db in a fresh working directory: mlp (10 trials), cnn (5), small (2)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    fill("mlp", MLP, 10)
    fill("cnn", CNN, 5)
    fill("small", MLP, 2)
    return tmp_path


def test_json_is_the_only_thing_on_stdout(store, capsys):
    assert main(["recommend", "mlp", "--format", "json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # fails on any stray line
    assert [item["layer_type"] for item in data] == ["input", "dense"]
    assert all(set(item) == KEYS for item in data)
    assert data == [r.to_dict() for r in recommend(open_study("mlp"))]
    assert data[0]["n_trials"] == 3 and data[0]["sites"] == ["input_dropout"]


def test_yaml_output_and_top(store, capsys):
    assert main(["recommend", "mlp", "--format", "yaml", "--top", "0.5"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data[0]["n_trials"] == 5
    assert data[0]["recommended"] == pytest.approx(0.04)  # median of 0.00 .. 0.08


def test_table_names_types_and_sites(store, capsys):
    assert main(["recommend", "mlp"]) == 0
    text = capsys.readouterr().out
    assert "recommended dropout rate per layer type" in text
    for word in ("input", "dense", "input_dropout", "fc.1", "0.020"):  # input: median of 0.00, 0.02, 0.04
        assert word in text


def test_several_studies_are_pooled(store, capsys):
    assert main(["recommend", "mlp", "cnn", "--format", "json"]) == 0
    data = {item["layer_type"]: item for item in json.loads(capsys.readouterr().out)}
    assert list(data) == ["input", "dense", "spatial"]
    assert data["dense"]["n_trials"] == 6 and data["spatial"]["n_trials"] == 3
    assert data["dense"]["sites"] == ["fc.1"]


def test_by_site(store, capsys):
    assert main(["recommend", "mlp", "--by", "site", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["site"], d["layer_type"]) for d in data] == [("input_dropout", "input"), ("fc.1", "dense")]
    assert data[1]["recommended"] == pytest.approx(0.03)  # fc.1 of trials 0-2: 0.01, 0.03, 0.05


def test_too_few_trials_says_so_and_prints_no_json(store, capsys):
    assert main(["recommend", "small", "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "too few complete trials" in captured.err and "'small' has 2" in captured.err


def test_unknown_study_lists_the_names_in_the_storage(store, capsys):
    assert main(["recommend", "mpl"]) == 2
    err = capsys.readouterr().err
    assert "no study named 'mpl'" in err and "'cnn', 'mlp', 'small'" in err


def test_missing_storage_is_an_error_and_creates_nothing(store, capsys):
    assert main(["recommend", "mlp", "--storage", "sqlite:///elsewhere/x.db"]) == 2
    assert "no Optuna storage at sqlite:///elsewhere/x.db" in capsys.readouterr().err
    assert not (store / "elsewhere").exists()


def test_a_study_file_names_the_study_and_its_storage(store, capsys):
    (store / "other").mkdir()
    fill("mlp", MLP, 4, storage="sqlite:///other/o.db")
    (store / "mlp.yaml").write_text(
        "name: mlp\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n"
        "storage: sqlite:///other/o.db\n"
    )
    assert main(["recommend", "mlp.yaml", "--format", "json", "--top", "1"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n_trials"] == 4  # the file's storage
    assert main(["recommend", "mlp.yaml", "--storage", STORAGE, "--format", "json", "--top", "1"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["n_trials"] == 10  # --storage wins


@pytest.mark.slow
def test_real_study_with_global_granularity(tmp_path, monkeypatch, capsys):
    """A real (tiny) `droptune tune`, then `droptune recommend` on its study file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        "name: tinyglobal\nmodel: {class_path: droptune.testing.TinyModule}\n"
        "data: {class_path: droptune.testing.TinyDataModule}\n"
        "search: {n_trials: 3, granularity: global}\ntrainer: {max_epochs: 1}\n"
    )
    assert main(["tune", "tiny.yaml"]) == 0
    tune_out = capsys.readouterr().out
    assert "dropout rate per layer type: best = trial" in tune_out  # printed at the end of tune
    assert main(["recommend", "tiny.yaml", "--format", "json"]) == 0
    data = {d["layer_type"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(data) == {"input", "dense"}
    study = open_study("tiny.yaml")
    best = study.best_trial
    # One variable for every site, which keeps the model's own ratio: TinyModule is built with
    # dense 0.3 and input 0.1, so dense takes the variable and input a third of it.
    assert data["dense"]["best"] == pytest.approx(best.params["dropout"], abs=1e-4)
    assert data["input"]["best"] == pytest.approx(best.params["dropout"] / 3, abs=1e-4)
    for item in data.values():
        assert item["importance"] == 1.0 and item["n_trials"] == 3
    assert data["input"]["recommended"] == pytest.approx(data["dense"]["recommended"] / 3, abs=1e-4)
    assert data["input"]["sites"] == ["input_dropout"] and data["dense"]["sites"] == ["dropout"]


def test_tune_prints_why_there_is_no_recommendation_yet(capsys):
    from droptune.commands._recommend import print_recommendation

    study = optuna.create_study(study_name="young")
    print_recommendation(study)
    out = capsys.readouterr().out.replace("\n", " ")
    assert "no recommendation yet: too few complete trials" in out and "'young' has 0" in out


def test_table_says_how_many_trials_back_it_and_which_figure_to_use(store, capsys):
    assert main(["recommend", "small", "--top", "0.2"]) == 2  # 2 trials: too few, one clear error
    capsys.readouterr()
    fill("three", MLP, 3)
    assert main(["recommend", "three"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "the median from the best 3 of 3 complete trials (three)" in text
    assert "warning: study 'three': the top 20% of 3 complete trials is fewer than 3" in text
    assert "`droptune export three -o rates.yaml` writes the `best` column" in text
    assert "`--recommended` the `rate` column" in text


def test_warnings_go_to_stderr_when_stdout_is_data(store, capsys):
    fill("three", MLP, 3)
    assert main(["recommend", "three", "--format", "json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # nothing but the data
    assert "warning: study 'three'" in captured.err
