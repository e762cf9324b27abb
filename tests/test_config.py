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
    # Default stores live in the study's project folder (here: the study file's own folder).
    assert spec.storage == f"sqlite:///{tmp_path.resolve()}/studies/droptune.db"
    assert spec.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert spec.trainer.max_epochs == 30 and spec.trainer.early_stopping_patience == 5


def test_overrides_replace_file_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "..")
    spec = load_config(write(tmp_path, VALID), {"n_trials": 2, "max_epochs": 1, "storage": "sqlite:///x.db", "timeout": None})
    assert spec.search.n_trials == 2 and spec.trainer.max_epochs == 1
    # A relative store given as a flag is relative to the working directory, as in a shell.
    assert spec.storage == f"sqlite:///{Path.cwd() / 'x.db'}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seed: 3", "seed: 3\ncolour: red"), r"unknown key colour; valid keys: name, model"),
        (("n_trials: 7", "n_trials: 7\n  n_trails: 3"), r"unknown key search.n_trails"),
        (("n_trials: 7", "n_trials: many"), r"search.n_trials must be an integer; got 'many'"),
        (("n_trials: 7", "n_trials: 0"), r"search.n_trials must be an integer >= 1; got 0\."),
        (("{dense: [0.1, 0.6]}", "{dense: [0.1, 1.2]}"), r"search.ranges.dense must be \[low, high\] with low <= high, each a finite number in \[0, 0.999999999999\]; got \(0.1, 1.2\)\. Rates are drop probabilities in \[0, 1\)"),
        (("{dense: [0.1, 0.6]}", "{dense: [0.6, 0.1]}"), r"search.ranges.dense must be \[low, high\] with low <= high.*; got \(0.6, 0.1\)"),
        (("{dense: [0.1, 0.6]}", "{dense: [0.1]}"), r"search.ranges.dense must be a list of 2 values"),
        (("{dense: [0.1, 0.6]}", "{conv: [0.1, 0.6]}"), r"search.ranges keys must be one of: input, dense.*; got 'conv'"),
        (('{"fc*": dense}', '{"fc*": linear}'), r"search.layer_types.fc\* must be one of: input, dense.*; got 'linear'"),
        (("sampler: random", "sampler: bayes"), r"search.sampler must be one of: tpe, gp, random, cmaes; got 'bayes'"),
        (("pruner: hyperband", "pruner: early"), r"search.pruner must be one of: median, hyperband.*; got 'early'"),
        (("granularity: type", "granularity: layer"), r"search.granularity must be one of: site, type, coarse-to-fine, global; got 'layer'"),
        (("direction: minimize", "direction: down"), r"objective.direction must be one of: minimize, maximize; got 'down'"),
        (("droptune.testing.TinyModule", "droptune.nope.Model"), r"model.class_path 'droptune.nope.Model' does not import"),
        (("droptune.testing.TinyModule", "droptune.testing.Nope"), r"module 'droptune.testing' has no 'Nope'"),
        (("droptune.testing.TinyModule", "droptune.testing.TinyDataModule"), r"is not a lightning.pytorch.LightningModule subclass"),
        (("max_epochs: 4", "max_epochs: 4.5"), r"trainer.max_epochs must be an integer; got 4.5"),
        (("name: digits-cnn\n", ""), r"missing required key name"),
        (("n_trials: 7", "n_trials: 7\n  timeout: .nan"), r"search.timeout must be a finite number > 0 or null; got nan"),
        (("n_trials: 7", "n_trials: 7\n  timeout: .inf"), r"search.timeout must be a finite number > 0 or null; got inf"),
        (("seed: 3", "seed: 4294967296"), r"seed must be an integer in \[0, 4294967295\]; got 4294967296\. Seeds are"),
        (("seed: 3", "seed: -1"), r"seed must be an integer in \[0, 4294967295\]; got -1"),
        (("max_gap: 0.2", "max_gap: .nan"), r"objective.max_gap must be a finite number or null; got nan"),
        (("accelerator: cpu", "accelerator: quantum"), r"trainer.accelerator must be one of: auto, gpu, .*cpu.*; got 'quantum'"),
        (("accelerator: cpu", "accelerator: cpu, precision: 8-bit"), r"trainer.precision must be one of: .*32-true.*; got '8-bit'"),
        (("accelerator: cpu", "accelerator: cpu, precision: 16-mixed}\nloss: mse\nx: {"), r"unknown key x"),
        (("accelerator: cpu", "accelerator: tpu}\nsearch_pack: {"), r"unknown key search_pack"),
        (("n_trials: 7", "n_trials: 7\nsearch: {n_trials: 9}"), r"key 'search' appears twice in one mapping \(lines 5 and 14\)"),
    ],
)
def test_bad_input_is_one_clear_error_naming_file_and_key(tmp_path, change, message):
    old, new = change
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ("precision: 16-mixed", r"trainer.precision must be one of: 32-true, 32, bf16-mixed; got '16-mixed'\. Packed"),
        ("accelerator: mps", r"trainer.accelerator must be one of: auto, cpu, gpu, cuda; got 'mps'\. Packed"),
    ],
)
def test_packing_checks_happen_at_load_time(tmp_path, trainer, message):
    text = VALID.replace("accelerator: cpu", f"accelerator: cpu, {trainer}").replace("accelerator: cpu, accelerator", "accelerator")
    text = text.replace("n_trials: 7", "n_trials: 7\n  pack: 4")
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))
    load_config(write(tmp_path, text.replace("pack: 4", "pack: 1")))  # unpacked, Lightning takes it


def test_packed_loss_name_is_checked_at_load_time(tmp_path):
    text = VALID.replace("n_trials: 7", "n_trials: 7\n  pack: 4") + "loss: hinge\n"
    with pytest.raises(ConfigError, match=r"loss must be one of: cross_entropy, mse, or a dotted path; got 'hinge'"):
        load_config(write(tmp_path, text))


def test_flag_overrides_go_through_the_same_table_and_are_named(tmp_path):
    path = write(tmp_path, VALID)
    with pytest.raises(ConfigError, match=r"^--n-trials \(overrides .*study.yaml\): search.n_trials must be an integer >= 1; got 0\.$"):
        load_config(path, {"n_trials": 0})
    with pytest.raises(ConfigError, match=r"^--timeout \(overrides .*\): search.timeout must be a finite number > 0 or null; got nan"):
        load_config(path, {"timeout": float("nan")})
    with pytest.raises(ConfigError, match=r"^--accelerator .*trainer.accelerator must be one of"):
        load_config(path, {"accelerator": "abacus"})


def test_same_study_file_resolves_the_same_stores_from_any_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "studies").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    path = project / "studies" / "s.yaml"
    path.write_text("name: s\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n")
    seen = set()
    for cwd in (project, project / "studies", tmp_path):
        monkeypatch.chdir(cwd)
        spec = load_config(path)
        seen.add((spec.storage, spec.tracking_uri))
    # The repo's documented layout: studies/droptune.db and a top-level mlruns/ in the project folder.
    assert seen == {(f"sqlite:///{project.resolve()}/studies/droptune.db", f"sqlite:///{project.resolve()}/mlruns/mlflow.db")}


def test_relative_store_in_the_file_is_relative_to_the_project_folder(tmp_path, monkeypatch):
    (tmp_path / "mlruns").mkdir()
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(
        "name: s\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n"
        "storage: sqlite:///db/optuna.db\ntracking_uri: postgresql+psycopg://u@h/db\n"
    )
    monkeypatch.chdir(tmp_path / "sub")
    spec = load_config(path)
    assert spec.storage == f"sqlite:///{tmp_path.resolve()}/db/optuna.db"
    assert spec.tracking_uri == "postgresql+psycopg://u@h/db"


def test_not_yaml_and_not_mapping_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed"))
    with pytest.raises(ConfigError, match="a study file is a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="cannot read study file"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"is a binary file \(a NUL byte at offset 1\)"):
        path = tmp_path / "bin.yaml"
        path.write_bytes(b"n\x00ame: x\n")
        load_config(path)
    with pytest.raises(ConfigError, match=r"is not UTF-8 text: byte 0xe9 on line 1"):
        path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
        load_config(path)
    with pytest.raises(ConfigError, match=r"a study file is a mapping .*; got an empty file"):
        load_config(write(tmp_path, "# nothing\n"))
