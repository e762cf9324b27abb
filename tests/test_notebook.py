"""droptune.notebook.tune: a study from objects at hand (class, factory, instance), resumed by name."""

from __future__ import annotations

import optuna
import pytest

import droptune
from droptune.exceptions import ConfigError
from droptune.notebook import study_spec, tune
from droptune.testing import TinyDataModule, TinyModule

optuna.logging.set_verbosity(optuna.logging.WARNING)
TRAINER = {"max_epochs": 1, "early_stopping_patience": None}


@pytest.fixture
def stores(tmp_path):
    return {"storage": f"sqlite:///{tmp_path / 'o.db'}", "tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"}


def test_a_class_and_a_datamodule_run_a_study_that_resumes_by_name(stores):
    result = tune(model=TinyModule, datamodule=TinyDataModule(), n_trials=3, trainer=TRAINER, **stores)
    assert result.study.study_name == "notebook-tinymodule"
    assert len([t for t in result.study.trials if t.state.is_finished()]) == 3
    assert result.recommendations is not None and {r.layer_type for r in result.recommendations} == {"input", "dense"}
    again = tune(model=TinyModule, datamodule=TinyDataModule(), n_trials=4, trainer=TRAINER, **stores)
    assert [t.number for t in again.study.trials] == [0, 1, 2, 3]  # resumed: one more trial, none repeated


def test_a_factory_with_arguments_and_an_instance_are_built_fresh_for_each_trial(stores):
    built = []

    def make(hidden: int) -> TinyModule:
        built.append(hidden)
        return TinyModule(hidden=hidden)

    result = tune(model=make, datamodule=TinyDataModule, name="f", n_trials=2, model_args={"hidden": 8}, trainer=TRAINER, **stores)
    assert len(result.study.trials) == 2 and built and set(built) == {8}
    instance = TinyModule(p=0.3, input_p=0.1)
    result = tune(model=instance, datamodule=TinyDataModule(), name="i", n_trials=2, trainer=TRAINER, **stores)
    assert (instance.dropout.p, instance.input_dropout.p) == (0.3, 0.1)  # trials changed copies, not it
    assert result.study.trials[1].user_attrs["rates"] != {"dropout": 0.3, "input_dropout": 0.1}


def test_several_workers_need_a_study_file():
    with pytest.raises(ConfigError, match="runs in this process only"):
        study_spec(model=TinyModule, datamodule=TinyDataModule(), search={"workers": 2})


def test_bad_objects_are_one_clear_error():
    with pytest.raises(ConfigError, match="model must be a LightningModule class"):
        study_spec(model=3, datamodule=TinyDataModule())
    with pytest.raises(ConfigError, match="datamodule must be a LightningDataModule"):
        study_spec(model=TinyModule, datamodule=[1, 2])
    with pytest.raises(ConfigError, match="trainer"):
        study_spec(model=TinyModule, datamodule=TinyDataModule(), trainer={"max_epoch": 3})


def test_droptune_tune_takes_a_study_file_too_and_refuses_a_mix(stores, tmp_path):
    study_file = tmp_path / "tiny.yaml"
    study_file.write_text(
        "name: from-file\nmodel: {class_path: droptune.testing.TinyModule}\n"
        "data: {class_path: droptune.testing.TinyDataModule}\n"
        f"storage: {stores['storage']}\ntracking_uri: {stores['tracking_uri']}\n"
        "search: {n_trials: 5}\ntrainer: {max_epochs: 1, early_stopping_patience: null}\n"
    )
    result = droptune.tune(study_file, n_trials=2)  # the YAML path: the same call, n_trials overriding the file's
    assert result.study.study_name == "from-file"
    assert len([t for t in result.study.trials if t.state.is_finished()]) == 2
    with pytest.raises(ConfigError, match="a study file or StudySpec already names"):
        droptune.tune(study_file, model=TinyModule)
    with pytest.raises(ConfigError, match="needs a study file .* or model= and datamodule="):
        droptune.tune(model=TinyModule)
