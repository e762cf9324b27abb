"""`droptune tune` end to end on tiny studies, checked through Optuna's and MLflow's public APIs."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from droptune.cli import main
from droptune.config import load_config
from droptune.record import TrialResult, gap_curve
from droptune.space import PRIORS, RANGES
from droptune.tuning import FitExecutor, prepare_study, space_of
from droptune.tuning._recorder import TrialRecorder

STORAGE = "sqlite:///studies/droptune.db"


def write_study(folder: Path, extra: str = "", name: str = "tiny", model: str = "droptune.testing.TinyModule",
                data: str = "droptune.testing.TinyDataModule",
                search: str = "n_trials: 3, sampler: random, pruner: none, granularity: site") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: {name}
            model: {{class_path: {model}}}
            data: {{class_path: {data}}}
            search: {{{search}}}
            trainer: {{max_epochs: 3, early_stopping_patience: null, accelerator: cpu}}
            """
        )
        + textwrap.dedent(extra)
    )
    return path


def trials(name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=STORAGE).get_trials()


def mlflow_client() -> MlflowClient:
    """A client on this test's store. The URI is made absolute: MLflow caches stores by URI
    string, so a relative one would reach the database of an earlier test's directory."""
    return MlflowClient(f"sqlite:///{Path.cwd() / 'mlruns' / 'mlflow.db'}")


def runs(client: MlflowClient, name: str = "tiny"):
    experiment = client.get_experiment_by_name(name)
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in found if r.data.tags.get("droptune.role") == "study"]
    children = [r for r in found if r.data.tags.get("droptune.role") == "trial"]
    return experiment, parents, children


def test_tune_fills_optuna_and_mlflow(in_tmp):
    study_file = write_study(in_tmp)
    assert main(["tune", str(study_file)]) == 0

    done = trials()
    assert [t.number for t in done] == [0, 1, 2]
    assert optuna.load_study(study_name="tiny", storage=STORAGE).metric_names == ["val_loss"]  # named in dashboards
    assert all(t.state == TrialState.COMPLETE for t in done)
    assert all(set(t.params) == {"input_dropout", "dropout"} for t in done)
    # trial 0 is the textbook prior
    assert done[0].params == {"input_dropout": PRIORS["input"], "dropout": PRIORS["dense"]}
    assert done[0].user_attrs["prior"] is True
    for t in done:
        assert t.user_attrs["rates"] == t.params
        assert t.user_attrs["layer_types"] == {"input_dropout": "input", "dropout": "dense"}
        # Optuna keeps scalars and the compact gap curve; per-epoch losses live in MLflow.
        assert len(gap_curve(t)) == 3
        reported = [t.intermediate_values[epoch] for epoch in range(3)]
        # the value is the best epoch's validation loss, not the last one's
        assert t.value == min(reported)
        assert t.user_attrs["best_epoch"] == reported.index(t.value)

    client = mlflow_client()
    experiment, parents, children = runs(client)
    assert experiment.artifact_location.startswith((in_tmp / "mlruns" / "artifacts").resolve().as_uri())
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_complete"] == 3 and parent.data.metrics["n_failed"] == 0
    assert parent.data.metrics["best_value"] == pytest.approx(min(t.value for t in done))
    assert parent.data.metrics["best_val_loss"] == parent.data.metrics["best_value"]
    # droptune's MLflow view sorts by sort_key: the parent's is below every trial's
    assert all(parent.data.metrics["sort_key"] < c.data.metrics["sort_key"] for c in children)
    logged = [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert {"tiny.yaml", "sites.txt", "sites.json"} <= set(logged)
    # The site table droptune inspect shows, as data: every site with its type and liveness.
    sites = json.loads(Path(client.download_artifacts(parent.info.run_id, "sites.json", str(in_tmp))).read_text())
    assert {(r["name"], r["layer_type"], r["live"]) for r in sites["sites"]} == {
        ("input_dropout", "input", True), ("dropout", "dense", True)
    }
    # The number of classes, for the recommendation's "sits at chance" check.
    assert optuna.load_study(study_name="tiny", storage=STORAGE).user_attrs["n_classes"] == 3
    assert (in_tmp / "mlruns" / "artifacts").is_dir() and not (in_tmp / "mlartifacts").exists()

    assert sorted(int(r.data.tags["droptune.trial_number"]) for r in children) == [0, 1, 2]
    for run in children:
        number = int(run.data.tags["droptune.trial_number"])
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["droptune.state"] == "complete"
        assert float(run.data.params["rate.dropout"]) == pytest.approx(done[number].params["dropout"], abs=1e-6)
        assert run.data.params["type.input_dropout"] == "input"
        # per layer type beside per site (one site per type here)
        assert run.data.params["rate.dense"] == run.data.params["rate.dropout"]
        assert run.data.params["rate.input"] == run.data.params["rate.input_dropout"]
        history = {
            key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            for key in ("train_loss", "train_loss_eval", "val_loss", "val_acc", "overfit_gap")
        }
        assert all(sorted(h) == [0, 1, 2] for h in history.values()), history
        for step in range(3):
            gap = history["val_loss"][step] - history["train_loss_eval"][step]
            assert history["overfit_gap"][step] == pytest.approx(gap, abs=1e-6)
            assert history["val_loss"][step] == done[number].intermediate_values[step]
        assert [history["overfit_gap"][s] for s in range(3)] == pytest.approx(gap_curve(done[number]), rel=1e-3)
        assert run.info.artifact_uri.startswith((in_tmp / "mlruns" / "artifacts").resolve().as_uri())


def test_running_again_resumes_without_duplicating(in_tmp):
    study_file = write_study(in_tmp)
    assert main(["tune", str(study_file), "--n-trials", "2"]) == 0
    first = trials()
    assert main(["tune", str(study_file), "--n-trials", "4"]) == 0
    second = trials()
    assert len(second) == 4
    for before, after in zip(first, second):
        assert (before.number, before.params, before.value, before.datetime_complete) == (
            after.number, after.params, after.value, after.datetime_complete
        )
    # again with the count reached: nothing new runs
    assert main(["tune", str(study_file), "--n-trials", "4"]) == 0
    assert len(trials()) == 4
    _, parents, children = runs(mlflow_client())
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4


INTERRUPTING = '''
import os
from droptune.testing import TinyModule


class InterruptOnce(TinyModule):
    """Raises KeyboardInterrupt (Ctrl-C) in the second epoch of the second trial, once.

    Counted by second epochs, not fits: a one-epoch check fit before the study (preflight)
    does not count.
    """

    def on_train_epoch_start(self):
        if self.current_epoch != 1:
            return
        with open("second_epochs", "a") as f:
            f.write("epoch 1\\n")
        with open("second_epochs") as f:
            second_trial = len(f.readlines()) == 2
        if second_trial and not os.path.exists("interrupted"):
            open("interrupted", "w").close()
            raise KeyboardInterrupt
'''


def test_interrupted_run_is_recorded_and_resumes(in_tmp):
    (in_tmp / "interrupting.py").write_text(INTERRUPTING)
    study_file = write_study(in_tmp, model="interrupting.InterruptOnce")
    assert main(["tune", str(study_file)]) == 130
    assert (in_tmp / "interrupted").exists()
    states = [t.state for t in trials()]
    assert states[0] == TrialState.COMPLETE and states[-1] == TrialState.FAIL
    assert "interrupted" in trials()[-1].user_attrs["fail_reason"]
    client = mlflow_client()
    _, (parent,), children = runs(client)
    assert parent.info.status == "KILLED"
    failed = [r for r in children if r.data.tags["droptune.state"] == "interrupted"]  # failed by Ctrl-C
    assert len(failed) == 1 and failed[0].info.status == "FAILED"

    assert main(["tune", str(study_file)]) == 0
    final = trials()
    assert sum(t.state == TrialState.COMPLETE for t in final) == 3
    assert all(t.state != TrialState.RUNNING for t in final)
    _, (parent_again,), _ = runs(client)
    assert parent_again.info.run_id == parent.info.run_id and parent_again.info.status == "FINISHED"


USER_CODE = '''
import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class PlainModel(pl.LightningModule):
    """An ordinary user module: nothing droptune-specific."""

    def __init__(self, width=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class PlainData(pl.LightningDataModule):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(120, 6, generator=g)
        y = (x[:, 0] > 0).long()
        self.train, self.val = TensorDataset(x[:80], y[:80]), TensorDataset(x[80:], y[80:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=20, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=20)
'''


def test_a_users_own_module_works_unchanged(in_tmp):
    (in_tmp / "usercode.py").write_text(USER_CODE)
    study_file = write_study(in_tmp, name="user", model="usercode.PlainModel", data="usercode.PlainData")
    assert main(["tune", str(study_file), "--n-trials", "2"]) == 0
    done = trials("user")
    assert [t.state for t in done] == [TrialState.COMPLETE] * 2
    assert set(done[0].params) == {"net.2"}
    client = mlflow_client()
    _, _, children = runs(client, "user")
    (run,) = [r for r in children if r.data.tags["droptune.trial_number"] == "1"]
    history = {
        key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
        for key in ("train_loss_eval", "val_loss", "overfit_gap")
    }
    assert len(history["train_loss_eval"]) == 3 and all(math.isfinite(v) for v in history["train_loss_eval"])
    gaps = [v - t for v, t in zip(history["val_loss"], history["train_loss_eval"])]
    assert history["overfit_gap"] == pytest.approx(gaps)
    assert gap_curve(done[1]) == pytest.approx(gaps, rel=1e-3)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_pruned_trial_stops_early_and_its_run_is_killed(in_tmp):
    spec = load_config(write_study(in_tmp))
    lifecycle = prepare_study(spec)
    study = lifecycle.study
    study.pruner = AlwaysPrune()
    recorder = TrialRecorder(
        study=study, tracker=lifecycle.tracker, parent_run_id=lifecycle.parent_run_id, objective=spec.objective
    )
    executor = FitExecutor(spec, space_of(spec), recorder)
    trial = study.ask()
    executor.start([trial])
    ((_, result),) = executor.step()
    assert isinstance(result, TrialResult)
    assert result.state == "pruned" and len(result.history) == 1  # stopped after epoch 0 of 3
    recorder.close(trial, result)
    recorder.shutdown()
    _, _, (child,) = runs(mlflow_client())
    assert child.info.status == "KILLED" and child.data.tags["droptune.state"] == "pruned"


def test_max_gap_becomes_a_trial_constraint(in_tmp):
    study_file = write_study(in_tmp, extra="objective: {max_gap: 0.05}\n")
    assert main(["tune", str(study_file), "--n-trials", "2"]) == 0
    for t in trials():
        assert t.constraints == pytest.approx({"overfit_gap": t.user_attrs["overfit_gap"] - 0.05})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("search: {sampler: bayes}\n", "search.sampler must be one of: tpe, gp, random, cmaes; got 'bayes'"),
        ("search: {ranges: {dense: [0.5, 0.2]}}\n", "search.ranges.dense must be [low, high] with low <= high"),
        ("colour: red\n", "unknown key colour"),
    ],
)
def test_bad_study_file_exits_2_and_creates_nothing(in_tmp, capsys, text, message):
    path = in_tmp / "bad.yaml"
    path.write_text("name: bad\nmodel: droptune.testing.TinyModule\ndata: droptune.testing.TinyDataModule\n" + text)
    assert main(["tune", str(path)]) == 2
    assert message in " ".join(capsys.readouterr().err.split())  # as printed, wrapped to the terminal
    assert sorted(p.name for p in in_tmp.iterdir()) == ["bad.yaml"]


NO_DROPOUT = '''
from torch import nn
from droptune.testing import TinyModule

class NoDropout(TinyModule):
    def __init__(self):
        super().__init__()
        self.input_dropout = nn.Identity()
        self.dropout = nn.Identity()
'''


def test_a_model_without_dropout_is_an_error_before_anything_is_created(in_tmp, capsys):
    (in_tmp / "nodrop.py").write_text(NO_DROPOUT)
    study_file = write_study(in_tmp, name="nodrop", model="nodrop.NoDropout")
    assert main(["tune", str(study_file)]) == 2
    assert "the model has no dropout modules" in capsys.readouterr().err
    assert not (in_tmp / "studies").exists() and not (in_tmp / "mlruns").exists()


def test_excluded_sites_keep_their_rate_and_are_still_exported(in_tmp):
    from droptune import apply_rates, get_rates
    from droptune.export import export_best, write_export
    from droptune.testing import TinyModule

    study_file = write_study(in_tmp, search="n_trials: 2, sampler: random, pruner: none, granularity: site, exclude: [input_dropout]")
    assert main(["tune", str(study_file)]) == 0
    done = trials()
    assert all(set(t.params) == {"dropout"} for t in done)
    config = export_best(optuna.load_study(study_name="tiny", storage=STORAGE))
    assert config["rates"]["input_dropout"] == 0.1  # TinyModule's own rate, untouched
    assert config["layer_types"] == {"input_dropout": "input", "dropout": "dense"}
    path = write_export(config, in_tmp / "best.yaml")
    model = apply_rates(TinyModule(), path)  # strict: a full config applies to a fresh model
    assert get_rates(model) == config["rates"]


def test_coarse_to_fine_study_ties_then_refines_per_site_and_exports_the_rates_it_trained(in_tmp):
    from droptune import apply_rates, get_rates
    from droptune.export import export_best
    from droptune.models import MLP

    path = in_tmp / "c2f.yaml"
    path.write_text(textwrap.dedent(
        """
        name: c2f
        model: {class_path: droptune.models.MLP, init_args: {in_features: 8, hidden: [16, 16], num_classes: 3}}
        data: {class_path: droptune.testing.TinyDataModule}
        search: {n_trials: 4, granularity: coarse-to-fine, coarse_trials: 2, pruner: none}
        trainer: {max_epochs: 1, early_stopping_patience: null, accelerator: cpu}
        """
    ))
    assert main(["tune", str(path)]) == 0

    done = trials("c2f")
    assert [set(t.params) for t in done] == [{"input", "dense"}] * 2 + [
        {"input", "dense", "scale:hidden.2", "scale:hidden.5"}] * 2
    assert done[0].user_attrs["rates"] == {"input_dropout": PRIORS["input"], "hidden.2": PRIORS["dense"],
                                           "hidden.5": PRIORS["dense"]}
    for t in done[2:]:  # the rates the trial trained with are the type rate scaled per site
        assert t.user_attrs["rates"]["hidden.2"] == pytest.approx(
            min(t.params["dense"] * 2 ** t.params["scale:hidden.2"], RANGES["dense"][1]))
    best = optuna.load_study(study_name="c2f", storage=STORAGE).best_trial
    model = MLP(in_features=8, hidden=[16, 16], num_classes=3)
    apply_rates(model, export_best(optuna.load_study(study_name="c2f", storage=STORAGE))["rates"])
    assert get_rates(model) == pytest.approx(best.user_attrs["rates"])


def test_bad_coarse_trials_is_one_clear_error(in_tmp, capsys):
    path = write_study(in_tmp, extra="")
    path.write_text(path.read_text().replace("granularity: site}", "granularity: site, coarse_trials: -1}"))
    assert main(["tune", str(path)]) != 0
    assert "search.coarse_trials must be an integer >= 0; got -1" in " ".join(capsys.readouterr().err.split())


def test_tracking_uri_none_runs_the_study_without_any_mlflow_store(in_tmp):
    study_file = write_study(in_tmp, search="n_trials: 2, sampler: random, pruner: none")
    assert main(["tune", str(study_file), "--tracking-uri", "none", "--no-confirm"]) == 0
    assert [t.state for t in trials()] == [TrialState.COMPLETE] * 2
    assert not (in_tmp / "mlruns").exists()  # nothing written for MLflow


def test_a_site_built_at_zero_in_a_tied_group_is_tuned_on_its_own_and_tune_says_so(in_tmp, capsys):
    study_file = write_study(
        in_tmp,
        name="zeros",
        model="droptune.testing.TinyModule, init_args: {input_p: 0.0}",
        search="n_trials: 3, sampler: random, pruner: none, granularity: type, layer_types: {'*': dense}",
    )
    assert main(["tune", str(study_file)]) == 0
    [note] = [line for line in capsys.readouterr().err.splitlines() if "dense@0" in line]
    assert note.startswith("warning: study zeros:") and "input_dropout" in note and "built at rate 0" in note
    done = trials("zeros")
    assert all(set(t.params) == {"dense", "dense@0"} for t in done)
    assert all(t.user_attrs["rates"]["input_dropout"] == t.params["dense@0"] for t in done)
    assert any(t.user_attrs["rates"]["input_dropout"] > 0.0 for t in done)
