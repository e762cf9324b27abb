"""``droptune export`` through droptune.cli.main, and the round trip into training code."""

from __future__ import annotations

import functools
import json
import re

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from droptune import apply_rates, get_rates
from droptune.cli import main
from droptune.testing import TinyModule, add_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

STORAGE = "sqlite:///studies/droptune.db"
TYPES = {"input_dropout": "input", "dropout": "dense"}


add = functools.partial(add_trial, layer_types=TYPES)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """studies/droptune.db with study "tiny" (best: trial 1) and "failed" (no complete trial)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    tiny = optuna.create_study(study_name="tiny", storage=STORAGE)
    add(tiny, {"input_dropout": 0.1, "dropout": 0.5}, 0.8)
    add(tiny, {"input_dropout": 0.25, "dropout": 0.125}, 0.4)
    add(tiny, {"input_dropout": 0.2, "dropout": 0.2}, None, state=TrialState.PRUNED)
    failed = optuna.create_study(study_name="failed", storage=STORAGE)
    add(failed, {"input_dropout": 0.2, "dropout": 0.2}, None, state=TrialState.FAIL)
    return tmp_path


def test_yaml_to_stdout_by_default(store, capsys):
    assert main(["export", "tiny"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data == {
        "study": "tiny",
        "trial": 1,
        "value": 0.4,
        "direction": "minimize",
        "rates": {"input_dropout": 0.25, "dropout": 0.125},
        "layer_types": TYPES,
    }


@pytest.mark.parametrize(("name", "fmt"), [("best.yaml", None), ("best.json", None), ("conf.txt", "json")])
def test_output_file_round_trips_into_a_fresh_model(store, capsys, name, fmt):
    argv = ["export", "tiny", "-o", name] + (["--format", fmt] if fmt else [])
    assert main(argv) == 0
    assert capsys.readouterr().out == ""
    text = (store / name).read_text()
    loaded = yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)
    assert loaded["trial"] == 1
    model = apply_rates(TinyModule(), store / name)  # YAML reads JSON too, whatever the suffix
    assert get_rates(model) == {"input_dropout": 0.25, "dropout": 0.125}


def test_python_snippet_for_a_given_trial(store, capsys):
    assert main(["export", "tiny", "--trial", "0", "--format", "python"]) == 0
    snippet = capsys.readouterr().out
    model = TinyModule(p=0.0, input_p=0.0)
    exec(snippet, {"model": model})  # noqa: S102
    assert get_rates(model) == {"input_dropout": 0.1, "dropout": 0.5}


def test_python_format_from_the_output_suffix(store):
    assert main(["export", "tiny", "-o", "apply_best.py"]) == 0
    model = TinyModule()
    exec((store / "apply_best.py").read_text(), {"model": model})  # noqa: S102
    assert get_rates(model) == {"input_dropout": 0.25, "dropout": 0.125}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "failed"], "study 'failed' has no complete trial"),
        (["export", "tiny", "--trial", "2"], "trial 2 of study 'tiny' is PRUNED"),
        (["export", "tiny", "--trial", "7"], "no trial 7"),
        (["export", "tinny"], "no study named 'tinny'.*'failed', 'tiny'"),
        (["export", "tiny", "--storage", "sqlite:///nope.db"], "no Optuna storage at sqlite:///nope.db"),
    ],
)
def test_errors_are_one_clear_message(store, capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.search(message, captured.err.replace("\n", " ")), captured.err


@pytest.mark.slow
def test_real_study_export_then_apply(tmp_path, monkeypatch, capsys):
    """`droptune tune` then `droptune export -o best.yaml`, applied to a fresh TinyModule."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(
        "name: tinyexport\nmodel: {class_path: droptune.testing.TinyModule}\n"
        "data: {class_path: droptune.testing.TinyDataModule}\n"
        "search: {n_trials: 3, granularity: site}\ntrainer: {max_epochs: 1}\n"
    )
    assert main(["tune", "tiny.yaml"]) == 0
    assert main(["export", "tiny.yaml", "-o", "best.yaml"]) == 0
    capsys.readouterr()
    study = optuna.load_study(study_name="tinyexport", storage=STORAGE)
    model = apply_rates(TinyModule(), "best.yaml")
    assert get_rates(model) == study.best_trial.params  # granularity site: params are the rates
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["trial"] == study.best_trial.number


def test_recommended_round_trips_through_apply_rates(store, capsys):
    from droptune.recommend import recommend

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    add(study, {"input_dropout": 0.05, "dropout": 0.3}, 0.5)
    add(study, {"input_dropout": 0.15, "dropout": 0.7}, 0.9)  # 4 complete: the recommendation uses the top 3
    assert main(["export", "tiny", "--recommended", "-o", "rec.yaml"]) == 0
    assert "the recommended rate per layer type" in capsys.readouterr().err
    by_type = {r.layer_type: r.recommended for r in recommend(study)}
    model = apply_rates(TinyModule(), "rec.yaml")  # strict: the file covers every site
    assert get_rates(model) == pytest.approx({"input_dropout": by_type["input"], "dropout": by_type["dense"]})
    assert get_rates(model)["dropout"] == pytest.approx(0.3)  # the median of 0.125, 0.3, 0.5, not the best 0.125
    assert main(["export", "tiny", "--best"]) == 0  # the default, said explicitly
    assert yaml.safe_load(capsys.readouterr().out)["rates"] == {"input_dropout": 0.25, "dropout": 0.125}


def test_help_says_once_which_is_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("(the default)") == 1 and "--recommended" in text and "--best" in text


def test_recommended_and_trial_exclude_each_other(store, capsys):
    assert main(["export", "tiny", "--recommended", "--trial", "0"]) == 2
    assert "give one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "tiny", "--recommended", "--best"])
