"""Study files: a valid one loads with its defaults; every kind of bad input is one clear error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from droptune.config import StudySpec, load_config
from droptune.exceptions import ConfigError

VALID = """
name: digits-cnn
model: {class_path: droptune.testing.TinyModule, init_args: {hidden: 8}}
data:  {class_path: droptune.testing.TinyDataModule, init_args: {n_train: 40}}
search:
  granularity: type
  ranges: {dense: [0.1, 0.6]}
  layer_types: {"fc*": dense}
  include: ["*"]
  exclude: [input_dropout]
  sampler: random
  pruner: hyperband
  n_trials: 7
objective: {metric: val_loss, direction: minimize, max_gap: 0.2}
trainer: {max_epochs: 4, early_stopping_patience: 2, accelerator: cpu}
storage: sqlite:///s.db
tracking_uri: sqlite:///m/mlflow.db
seed: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_file_loads_every_key(tmp_path):
    spec = load_config(write(tmp_path, VALID))
    assert isinstance(spec, StudySpec)
    assert spec.model.init_args == {"hidden": 8}
    assert spec.search.ranges == {"dense": (0.1, 0.6)}
    assert spec.search.exclude == ("input_dropout",)
    assert (spec.search.granularity, spec.search.sampler, spec.search.pruner) == ("type", "random", "hyperband")
    assert spec.objective.max_gap == 0.2
    assert spec.trainer.max_epochs == 4 and spec.seed == 3
    assert spec.source == str(tmp_path / "study.yaml")


def test_minimal_file_gets_documented_defaults(tmp_path):
    spec = load_config(
        write(tmp_path, "name: n\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n")
    )
    assert spec.search.n_trials == 40 and spec.search.sampler == "tpe" and spec.search.pruner == "median"
    assert spec.storage == "sqlite:///studies/droptune.db"
    assert spec.tracking_uri == "sqlite:///mlruns/mlflow.db"
    assert spec.trainer.max_epochs == 30 and spec.trainer.early_stopping_patience == 5


def test_overrides_replace_file_values(tmp_path):
    spec = load_config(write(tmp_path, VALID), {"n_trials": 2, "max_epochs": 1, "storage": "sqlite:///x.db", "timeout": None})
    assert spec.search.n_trials == 2 and spec.trainer.max_epochs == 1 and spec.storage == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seed: 3", "seed: 3\ncolour: red"), r"unknown key colour; valid keys: name, model"),
        (("n_trials: 7", "n_trials: 7\n  n_trails: 3"), r"unknown key search.n_trails"),
        (("n_trials: 7", "n_trials: many"), r"search.n_trials must be an integer; got 'many'"),
        (("n_trials: 7", "n_trials: 0"), r"search.n_trials must be a positive integer; got 0"),
        (("{dense: [0.1, 0.6]}", "{dense: [0.1, 1.2]}"), r"search.ranges.dense: bounds must be drop probabilities in \[0, 1\)"),
        (("{dense: [0.1, 0.6]}", "{dense: [0.6, 0.1]}"), r"search.ranges.dense: low must not exceed high"),
        (("{dense: [0.1, 0.6]}", "{dense: [0.1]}"), r"search.ranges.dense must be a list of 2 values"),
        (("{dense: [0.1, 0.6]}", "{conv: [0.1, 0.6]}"), r"search.ranges.conv: unknown layer type 'conv'; valid: input, dense"),
        (('{"fc*": dense}', '{"fc*": linear}'), r"search.layer_types.fc\*: unknown layer type 'linear'"),
        (("sampler: random", "sampler: bayes"), r"search.sampler: 'bayes' is not valid; choose one of: tpe, gp, random, cmaes"),
        (("pruner: hyperband", "pruner: early"), r"search.pruner: 'early' is not valid; choose one of: median, hyperband"),
        (("granularity: type", "granularity: layer"), r"search.granularity: 'layer' is not valid; choose one of: site, type, coarse-to-fine, global"),
        (("direction: minimize", "direction: down"), r"objective.direction: 'down' is not valid"),
        (("droptune.testing.TinyModule", "droptune.nope.Model"), r"model.class_path 'droptune.nope.Model' does not import"),
        (("droptune.testing.TinyModule", "droptune.testing.Nope"), r"module 'droptune.testing' has no 'Nope'"),
        (("droptune.testing.TinyModule", "droptune.testing.TinyDataModule"), r"is not a lightning.pytorch.LightningModule subclass"),
        (("max_epochs: 4", "max_epochs: 4.5"), r"trainer.max_epochs must be an integer; got 4.5"),
        (("name: digits-cnn\n", ""), r"missing required key name"),
    ],
)
def test_bad_input_is_one_clear_error_naming_file_and_key(tmp_path, change, message):
    old, new = change
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_not_yaml_and_not_mapping_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed"))
    with pytest.raises(ConfigError, match="a study file is a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="cannot read study file"):
        load_config(tmp_path / "absent.yaml")
