"""droptune.export: a trial's rates written out and applied to a fresh model."""

from __future__ import annotations

import functools
import json

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from droptune import apply_rates, get_rates
from droptune.exceptions import ConfigError, SiteError, StudyError
from droptune.export import export_best, export_recommended, format_from_path, render_export, write_export
from droptune.testing import TinyModule, add_trial

optuna.logging.set_verbosity(optuna.logging.WARNING)

TINY_TYPES = {"input_dropout": "input", "dropout": "dense"}


add = functools.partial(add_trial, layer_types=TINY_TYPES)


@pytest.fixture
def study():
    study = optuna.create_study(study_name="tiny")
    add(study, {"input_dropout": 0.1, "dropout": 0.5}, 0.9)
    add(study, {"input_dropout": 0.123456789012345, "dropout": 0.3141592653589793}, 0.5)  # best
    add(study, {"input_dropout": 0.2, "dropout": 0.2}, None, state=TrialState.PRUNED)
    add(study, {"input_dropout": 0.05, "dropout": 0.6}, 0.7)
    return study


def test_export_best_holds_the_best_trials_config(study):
    config = export_best(study)
    assert config == {
        "study": "tiny",
        "trial": 1,
        "value": 0.5,
        "direction": "minimize",
        "rates": {"input_dropout": 0.123456789012345, "dropout": 0.3141592653589793},
        "layer_types": TINY_TYPES,
    }


def test_export_a_given_trial(study):
    assert export_best(study, trial=3)["rates"] == {"input_dropout": 0.05, "dropout": 0.6}


@pytest.mark.parametrize(("number", "message"), [(9, r"no trial 9 \(trials 0-3\); complete trials: \[0, 1, 3\]"), (2, "trial 2 .* is PRUNED")])
def test_export_of_a_missing_or_unfinished_trial_is_a_study_error(study, number, message):
    with pytest.raises(StudyError, match=message):
        export_best(study, trial=number)


def test_a_study_without_complete_trials_cannot_be_exported():
    study = optuna.create_study(study_name="empty")
    add(study, {"input_dropout": 0.2, "dropout": 0.2}, None, state=TrialState.FAIL)
    with pytest.raises(StudyError, match="study 'empty' has no complete trial"):
        export_best(study)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_file_to_apply_rates_gives_the_trials_params(study, tmp_path, suffix):
    path = write_export(export_best(study), tmp_path / f"best{suffix}")
    model = apply_rates(TinyModule(), path)  # strict: every site must be in the file
    assert get_rates(model) == study.trials[1].params


def test_python_snippet_applies_the_rates_to_model(study):
    snippet = render_export(export_best(study), "python")
    model = TinyModule()
    exec(compile(snippet, "<snippet>", "exec"), {"model": model})  # noqa: S102
    assert get_rates(model) == study.trials[1].params
    assert "droptune.apply_rates(" in snippet and "strict=True" in snippet


def test_yaml_and_json_hold_the_same_data(study):
    config = export_best(study)
    assert yaml.safe_load(render_export(config, "yaml")) == config
    assert json.loads(render_export(config, "json")) == config
    assert render_export(config, "yaml").startswith("# droptune export")


def test_numeric_site_names_survive_yaml(tmp_path):
    """nn.Sequential sites are named '0', '3'...: YAML must keep them strings."""
    study = optuna.create_study(study_name="seq")
    add(study, {"0": 0.1, "3": 0.4}, 1.0, layer_types={"0": "input", "3": "dense"})
    path = write_export(export_best(study), tmp_path / "best.yaml")
    model = torch_sequential()
    apply_rates(model, path)
    assert get_rates(model) == {"0": 0.1, "3": 0.4}


def torch_sequential():
    from torch import nn

    return nn.Sequential(nn.Dropout(0.0), nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.0), nn.Linear(4, 2))


def test_a_file_for_another_model_lists_missing_and_unknown_sites(tmp_path):
    study = optuna.create_study(study_name="other")
    add(study, {"input_dropout": 0.1, "head.2": 0.4}, 1.0, layer_types={"input_dropout": "input", "head.2": "dense"})
    path = write_export(export_best(study), tmp_path / "best.yaml")
    model = TinyModule(p=0.3)
    with pytest.raises(SiteError, match=r"unknown sites \['head.2'\].*missing sites \['dropout'\]"):
        apply_rates(model, path)
    assert get_rates(model) == {"input_dropout": 0.1, "dropout": 0.3}  # nothing was changed


def test_a_snippet_for_another_model_raises_too():
    study = optuna.create_study(study_name="other")
    add(study, {"input_dropout": 0.1, "head.2": 0.4}, 1.0, layer_types={"input_dropout": "input", "head.2": "dense"})
    with pytest.raises(SiteError, match=r"unknown sites \['head.2'\].*missing sites \['dropout'\]"):
        exec(render_export(export_best(study), "python"), {"model": TinyModule()})  # noqa: S102


def test_format_from_path_and_bad_format():
    assert [format_from_path(p) for p in ("a.yaml", "a.yml", "a.JSON", "a.py", "a.txt")] == [
        "yaml",
        "yaml",
        "json",
        "python",
        "yaml",
    ]
    with pytest.raises(ConfigError, match="yaml, json, python; got 'toml'"):
        render_export({"study": "s", "trial": 0, "rates": {}}, "toml")


def test_write_export_is_atomic_a_failed_write_keeps_the_old_file(study, tmp_path, monkeypatch):
    import errno
    import os

    target = tmp_path / "best.yaml"
    write_export(export_best(study), target)
    before = target.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ConfigError, match=r"cannot write export .*best\.yaml: the disk is full; free some space"):
        write_export(export_best(study, trial=0), target)
    assert target.read_bytes() == before  # the old export, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml"]  # no temporary file left


def test_write_export_under_a_file_or_onto_a_folder_says_so(study, tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(ConfigError, match=r"cannot create folder .*taken/sub for the export: .*taken is a file, not a folder"):
        write_export(export_best(study), tmp_path / "taken" / "sub" / "best.yaml")
    with pytest.raises(ConfigError, match=r"cannot create folder .*taken for the export: .*taken is a file"):
        write_export(export_best(study), tmp_path / "taken" / "best.yaml")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match=r"cannot write export .*folder: it is a folder"):
        write_export(export_best(study), tmp_path / "folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "taken"]


def mlp_study() -> optuna.Study:
    """Two dense sites tuned apart (granularity site) and one input site, over 6 trials."""
    study = optuna.create_study(study_name="mlp")
    types = {"0": "input", "3": "dense", "6": "dense"}
    for i, value in enumerate([0.9, 0.5, 0.6, 0.7, 0.8, 1.0]):
        rates = {"0": 0.05 * i, "3": 0.1 + 0.05 * i, "6": 0.3 + 0.02 * i}
        add(study, rates, value, layer_types=types)
    return study


def mlp():
    from torch import nn

    return nn.Sequential(
        nn.Dropout(0.0), nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.0), nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.0)
    )


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_export_recommended_round_trips_each_site_at_its_types_rate(tmp_path, suffix):
    from droptune.recommend import recommend

    study = mlp_study()
    by_type = {r.layer_type: r.recommended for r in recommend(study)}
    config = export_recommended(study)
    assert config["source"] == "recommended" and config["recommended"] == by_type
    path = write_export(config, tmp_path / f"rec{suffix}")
    model = apply_rates(mlp(), path)  # strict: the file covers every site
    assert get_rates(model) == pytest.approx({"0": by_type["input"], "3": by_type["dense"], "6": by_type["dense"]})
    # not the best trial's rates: the two dense sites differ there, and the median is not trial 1's
    best = get_rates(apply_rates(mlp(), write_export(export_best(study), tmp_path / "best.yaml")))
    assert best == pytest.approx({"0": 0.05, "3": 0.15, "6": 0.32})
    assert by_type["dense"] != pytest.approx(0.15) and by_type["dense"] != pytest.approx(0.32)


def test_export_recommended_keeps_untuned_sites_at_their_rate():
    from droptune.record import start_attrs

    study = optuna.create_study(study_name="partial")
    for i, value in enumerate([0.9, 0.5, 0.6]):  # site "0" was excluded from the search: the model's 0.2 stays
        rates = {"3": 0.1 * i}
        attrs = start_attrs(rates, {"3": "dense"}, model_rates={"0": 0.2, **rates}, model_types={"0": "input", "3": "dense"})
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs=attrs))
    config = export_recommended(study)
    assert config["rates"]["0"] == 0.2 and config["rates"]["3"] == config["recommended"]["dense"]


def test_export_recommended_needs_three_complete_trials():
    small = optuna.create_study(study_name="small")
    add(small, {"input_dropout": 0.1, "dropout": 0.5}, 0.9)
    with pytest.raises(StudyError, match="too few complete trials to recommend: 'small' has 1"):
        export_recommended(small)


def test_recommended_yaml_and_snippet_say_what_they_hold():
    config = export_recommended(mlp_study())
    text = render_export(config, "yaml")
    assert text.startswith("# droptune export of study 'mlp', the recommended rate per layer type.")
    assert yaml.safe_load(text) == config
    model = mlp()
    exec(render_export(config, "python"), {"model": model})  # noqa: S102
    assert get_rates(model)["6"] == pytest.approx(config["recommended"]["dense"])
