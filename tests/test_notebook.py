"""droptune.notebook.tune: a study from objects at hand (class, factory, instance), resumed by name."""

from __future__ import annotations

import logging

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


def test_lightnings_banners_are_off_and_each_trial_is_one_log_line(stores, capfd, caplog):
    caplog.set_level(logging.INFO, logger="droptune.notebook")
    tune(model=TinyModule, datamodule=TinyDataModule(), name="quiet", n_trials=2, trainer=TRAINER, **stores)
    shown = "".join(capfd.readouterr()) + caplog.text
    assert "GPU available" not in shown and "TPU available" not in shown and "Tip:" not in shown
    assert "MLflow database tables" not in shown and "LeafSpec" not in shown
    *lines, summary = [r.getMessage() for r in caplog.records if r.name == "droptune.notebook"]
    assert [line.split(" · ")[0] for line in lines] == ["trial 0 complete", "trial 1 complete"]
    assert all(" · val_loss " in line for line in lines)
    # then one summary: the counts, where the stores are, the best trial
    assert summary.startswith("study quiet: 2 complete, 0 pruned, 0 failed")
    assert f"Optuna store: {stores['storage']}" in summary and f"MLflow: {stores['tracking_uri']}" in summary
    assert "best val_loss: " in summary
    caplog.clear()
    tune(model=TinyModule, datamodule=TinyDataModule(), name="quiet", n_trials=3, trainer=TRAINER, **stores)
    *lines, summary = [r.getMessage() for r in caplog.records if r.name == "droptune.notebook"]
    assert [line.split(" · ")[0] for line in lines] == ["trial 2 complete"]  # resumed: the old trials stay quiet
    assert summary.startswith("study quiet: 3 complete")


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("verbose", [False, True])
def test_verbose_lets_lightning_speak(stores, monkeypatch, verbose):
    lightning = logging.getLogger("lightning.pytorch")
    monkeypatch.setattr(lightning, "level", logging.INFO)  # as a fresh notebook has it
    kept = _Kept()
    lightning.addHandler(kept)
    try:
        tune(model=TinyModule, datamodule=TinyDataModule(), name=f"v{verbose}", n_trials=1, trainer=TRAINER,
             verbose=verbose, storage=stores["storage"], tracking_uri="none")
    finally:
        lightning.removeHandler(kept)
    assert any("GPU available" in m for m in kept.messages) is verbose
    assert lightning.level == logging.INFO  # restored after the call


def test_with_logging_unconfigured_the_trial_lines_reach_stderr(stores, capfd, monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # a fresh notebook: nothing configured
    tune(model=TinyModule, datamodule=TinyDataModule(), name="bare", n_trials=1, trainer=TRAINER,
         storage=stores["storage"], tracking_uri="none")
    err = capfd.readouterr().err
    assert "trial 0 complete · val_loss" in err and "GPU available" not in err
    assert "study bare: 1 complete" in err and "Optuna store: " in err
    assert not logging.getLogger("droptune.notebook").handlers  # the handler was for the call only


def test_the_result_reads_as_a_table_in_text_and_html():
    from droptune.notebook import TuneResult
    from droptune.recommend import caveats, compute
    from droptune.testing import add_trial

    study = optuna.create_study(study_name="<demo>")
    for i, value in enumerate([0.9, 0.5, 0.6, 0.7]):
        add_trial(study, {"drop": 0.1 + 0.1 * i}, value, layer_types={"drop": "dense"})
    items, _ = compute(study)
    result = TuneResult(study=study, recommendations=items, caveats=caveats(study))
    text = repr(result)
    assert text.startswith("TuneResult(study '<demo>': 4 complete, 0 pruned, 0 failed; best objective 0.5 (trial 1))")
    header, row = text.splitlines()[1:3]
    assert header.split() == ["layer", "type", "recommended", "IQR", "best", "trial", "prior", "trials"]
    assert row.split() == ["dense", f"{items[0].recommended:.3f}", f"{items[0].low:.3f}-{items[0].high:.3f}", "0.200", "0.50", "3"]
    page = result._repr_html_()
    assert "&lt;demo&gt;" in page and "<demo>" not in page
    assert f"<tr><td>dense</td><td>{items[0].recommended:.3f}</td>" in page
    assert result.recommended == {"dense": items[0].recommended} and result.best_trial.number == 1
    young = TuneResult(study=optuna.create_study(study_name="young"), recommendations=None)
    assert "no recommendation yet" in repr(young) and "No recommendation yet" in young._repr_html_()


@pytest.mark.slow
def test_in_a_jupyter_kernel_the_result_is_a_table_and_lightning_is_quiet(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    cells = [
        "import droptune\nfrom droptune.testing import TinyDataModule, TinyModule",
        f"result = droptune.tune(model=TinyModule, datamodule=TinyDataModule(), name='nb', n_trials=3, "
        f"trainer={TRAINER!r}, storage='sqlite:///{tmp_path / 'o.db'}', tracking_uri='none')\nresult",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[1].outputs
    streamed = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "trial 0 complete · val_loss" in streamed and "trial 2 complete" in streamed
    assert "GPU available" not in streamed and "Tip:" not in streamed
    (shown,) = [o for o in outputs if o["output_type"] == "execute_result"]
    assert "<table>" in shown["data"]["text/html"] and "<td>dense</td>" in shown["data"]["text/html"]
    assert shown["data"]["text/plain"].startswith("TuneResult(study 'nb': 3 complete")
