"""Packed studies end to end: `droptune tune --pack K`, checked through Optuna and MLflow."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from droptune.cli import main
from droptune.config import StudySpec, load_config
from droptune.packing import Population
from droptune.record import decode_curve, gap_curve
from droptune.testing import TinyModule
from droptune.tuning import prepare_study, run_worker


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One Optuna storage and one MLflow store for the module; each test has its own study.

    Creating the databases takes seconds on a small machine. The URLs are absolute: MLflow
    caches stores by URI, and every test runs in its own directory.
    """
    folder = tmp_path_factory.mktemp("stores")
    return f"sqlite:///{folder / 'optuna.db'}", f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture
def study_file(in_tmp: Path, stores: tuple[str, str], request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """``make(search=..., trainer=..., extra=..., model=...)`` writes a study file, named after the test."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[-60:].strip("-")
    storage, tracking = stores

    def make(
        *,
        search: str = "",
        trainer: str = "",
        extra: str = "",
        model: str = "droptune.testing.TinyModule",
        data: str = "droptune.testing.TinyDataModule",
        suffix: str = "",
    ) -> Path:
        path = in_tmp / f"{name}{suffix}.yaml"
        path.write_text(
            textwrap.dedent(
                f"""
                name: {name}{suffix}
                model: {{class_path: {model}}}
                data: {data}
                search: {{n_trials: 6, sampler: random, pruner: none, granularity: site, heartbeat_interval: null{search}}}
                trainer: {{max_epochs: 3, early_stopping_patience: null, accelerator: cpu{trainer}}}
                storage: {storage}
                tracking_uri: {tracking}
                """
            )
            + textwrap.dedent(extra)
        )
        return path

    return make


@pytest.fixture
def sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The population's size at each epoch it trains."""
    seen: list[int] = []
    train_epoch = Population.train_epoch

    def spy(self: Population, batches):  # type: ignore[no-untyped-def]
        seen.append(self.size)
        return train_epoch(self, batches)

    monkeypatch.setattr(Population, "train_epoch", spy)
    return seen


def _trials(spec: StudySpec) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=spec.name, storage=spec.storage).get_trials()


def _child_runs(spec: StudySpec) -> list:
    client = MlflowClient(tracking_uri=spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.name)
    found = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in found if r.data.tags.get("droptune.role") == "trial"]


def _history(spec: StudySpec, metric: str) -> dict[int, list[float]]:
    """``{trial number: metric per epoch}`` from the trials' MLflow runs."""
    client = MlflowClient(tracking_uri=spec.tracking_uri)
    found = {}
    for run in _child_runs(spec):
        points = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
        found[int(run.data.tags["droptune.trial_number"])] = [m.value for m in points]
    return found


def test_tune_with_pack_trains_a_population_and_records_every_trial(study_file, sizes) -> None:  # type: ignore[no-untyped-def]
    path = study_file()
    assert main(["tune", str(path), "--pack", "4"]) == 0
    spec = load_config(path)

    assert sizes == [4, 4, 4, 2, 2, 2]  # four trials trained at once, then the last two
    done = _trials(spec)
    assert len(done) == 6
    assert all(t.state == TrialState.COMPLETE for t in done)
    for trial in done:
        assert set(trial.params) == {"input_dropout", "dropout"}  # named after the sites
        attrs = trial.user_attrs
        assert attrs["rates"] == {k: pytest.approx(v) for k, v in trial.params.items()}
        assert attrs["layer_types"] == {"input_dropout": "input", "dropout": "dense"}
        assert set(attrs["rates_by_type"]) == {"input", "dense"}
        assert attrs["epochs"] == 3 and attrs["pack"] == 4
        assert len(decode_curve(attrs["gap_curve.0"])) == 3
        reported = [trial.intermediate_values[epoch] for epoch in range(3)]
        assert trial.value == pytest.approx(min(reported))
        assert trial.value == pytest.approx(reported[attrs["best_epoch"]])
    assert done[0].user_attrs.get("prior") is True  # the enqueued prior trial is a member too

    children = _child_runs(spec)
    assert sorted(int(r.data.tags["droptune.trial_number"]) for r in children) == list(range(6))
    client = MlflowClient(tracking_uri=spec.tracking_uri)
    by_number = {t.number: t for t in done}
    for run in children:
        trial = by_number[int(run.data.tags["droptune.trial_number"])]
        assert run.info.status == "FINISHED"
        assert run.data.params["rate.dropout"] == str(round(trial.params["dropout"], 6))
        assert run.data.params["rate.dense"] == run.data.params["rate.dropout"]  # per type, one site each
        history = sorted(client.get_metric_history(run.info.run_id, "overfit_gap"), key=lambda m: m.step)
        assert [m.step for m in history] == [0, 1, 2]
        assert [m.value for m in history] == pytest.approx(gap_curve(trial), rel=1e-3)
        for metric in ("train_loss", "train_loss_eval", "val_loss", "val_acc"):
            assert len(client.get_metric_history(run.info.run_id, metric)) == 3


class PruneEven(optuna.pruners.BasePruner):
    """Prune even-numbered trials at their second epoch."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number % 2 == 0 and trial.last_step == 1


def test_a_pruned_member_frees_its_slot_for_a_new_trial(study_file, sizes) -> None:  # type: ignore[no-untyped-def]
    spec = load_config(study_file(search=", n_trials: 7, pack: 3", trainer=", max_epochs: 4"))
    study = prepare_study(spec).study
    study.pruner = PruneEven()
    counts = run_worker(spec, study=study)

    assert (counts.complete, counts.pruned, counts.failed) == (3, 4, 0)
    done = {t.number: t for t in _trials(spec)}
    assert len(done) == 7
    for number, trial in done.items():
        pruned = number % 2 == 0
        assert trial.state == (TrialState.PRUNED if pruned else TrialState.COMPLETE)
        assert trial.user_attrs["epochs"] == (2 if pruned else 4)
    # Trials 0 and 2 leave after 2 epochs; trials 3 and 4 take their slots while trial 1 goes
    # on: the population stays full until all 7 trials have started, never above 3.
    assert sizes[:6] == [3] * 6 and max(sizes) == 3
    assert sum(sizes) == sum(t.user_attrs["epochs"] for t in done.values())
    states = {int(r.data.tags["droptune.trial_number"]): r.info.status for r in _child_runs(spec)}
    assert states == {n: "KILLED" if n % 2 == 0 else "FINISHED" for n in range(7)}


def test_early_stopping_ends_a_member_and_its_value_is_the_best_epochs(study_file) -> None:  # type: ignore[no-untyped-def]
    # Maximising the training loss: it only falls, so patience 1 stops every trial after epoch 1.
    spec = load_config(
        study_file(
            search=", n_trials: 4, pack: 2",
            trainer=", max_epochs: 5, early_stopping_patience: 1",
            extra="objective: {metric: train_loss_eval, direction: maximize}\n",
        )
    )
    prepare_study(spec)
    counts = run_worker(spec)
    assert counts.complete == 4
    for trial in _trials(spec):
        curve = [trial.intermediate_values[epoch] for epoch in range(2)]  # the reported objective
        assert trial.user_attrs["epochs"] == 2 and trial.user_attrs["best_epoch"] == 0
        assert trial.value == pytest.approx(curve[0]) and curve[1] < curve[0]


def test_ctrl_c_fails_the_running_members_and_closes_their_runs(  # type: ignore[no-untyped-def]
    study_file, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_config(study_file(search=", pack: 3"))
    study = prepare_study(spec).study
    calls = []
    train_epoch = Population.train_epoch

    def interrupted(self: Population, batches):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_epoch(self, batches)

    monkeypatch.setattr(Population, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_worker(spec, study=study)
    done = _trials(spec)
    assert len(done) == 3
    for trial in done:
        assert trial.state == TrialState.FAIL
        assert "interrupted" in trial.user_attrs["fail_reason"]
    runs = _child_runs(spec)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FAILED"}
    assert {r.data.tags["droptune.state"] for r in runs} == {"interrupted"}  # failed, but only by Ctrl-C


def test_packed_and_unpacked_trials_give_the_same_curves_without_dropout(study_file) -> None:  # type: ignore[no-untyped-def]
    zero = "ranges: {input: [0.0, 0.0], dense: [0.0, 0.0]}"
    curves = {}
    for pack in (1, 2):
        spec = load_config(study_file(search=f", n_trials: 2, pack: {pack}, {zero}", suffix=f"-{pack}"))
        prepare_study(spec)
        run_worker(spec)
        curves[pack] = {key: _history(spec, key) for key in ("val_loss", "train_loss_eval")}
    assert set(curves[2]["val_loss"]) == {0, 1}
    for number in (0, 1):
        for key in ("val_loss", "train_loss_eval"):
            assert len(curves[2][key][number]) == 3
            assert curves[2][key][number] == pytest.approx(curves[1][key][number], rel=1e-4)


class LstmModule(TinyModule):
    def __init__(self, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.rnn = torch.nn.LSTM(8, 8, num_layers=2, dropout=0.2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.rnn(x.unsqueeze(1))[0][:, -1])


class LbfgsModule(TinyModule):
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.LBFGS(self.parameters())


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        ("_packing_kit.BatchNormModule", "", "running statistics"),
        ("test_packing_worker.LstmModule", "", "recurrent layers have no torch.vmap"),
        ("test_packing_worker.LbfgsModule", "", "returns LBFGS"),
        (
            "droptune.testing.TinyModule",
            "objective: {metric: val_f1, direction: maximize}\n",
            "objective.metric 'val_f1' is never logged",
        ),
    ],
    ids=["batchnorm", "lstm", "lbfgs", "metric"],
)
def test_a_study_that_cannot_be_packed_exits_2_before_any_trial_runs(  # type: ignore[no-untyped-def]
    study_file, capsys: pytest.CaptureFixture[str], model: str, extra: str, message: str
) -> None:
    path = study_file(model=model, extra=extra)
    assert main(["tune", str(path), "--pack", "4"]) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert message in error
    assert "--workers-per-gpu" in error or "val_f1" in message
    spec = load_config(path)
    if spec.name in optuna.get_all_study_names(spec.storage):  # a preflight check may refuse it before creating it
        assert [t.state for t in _trials(spec)] == [TrialState.WAITING]  # only the enqueued prior


@pytest.mark.parametrize(
    ("model", "view", "types"),
    [
        ("PatchTransformer", "patches", {"attention", "dense", "residual"}),
        ("DigitsCNN", "image", {"spatial", "dense"}),
    ],
)
def test_builtin_models_run_packed_studies(study_file, model: str, view: str, types: set[str]) -> None:  # type: ignore[no-untyped-def]
    data = f"{{class_path: droptune.data.DigitsDataModule, init_args: {{view: {view}, train_size: 64}}}}"
    spec = load_config(
        study_file(
            model=f"droptune.models.{model}",
            data=data,
            search=", n_trials: 3, pack: 3",
            trainer=", max_epochs: 2",
        )
    )
    prepare_study(spec)
    assert run_worker(spec).complete == 3
    for trial in _trials(spec):
        # every layer type of the model's sites has its rate (the types themselves: tests/sites)
        assert set(trial.user_attrs["rates_by_type"]) == set(trial.user_attrs["layer_types"].values())
        assert len(trial.user_attrs["rates_by_type"]) >= 2 and types & set(trial.user_attrs["rates_by_type"])
        assert len(gap_curve(trial)) == 2


@pytest.mark.gpu
def test_a_packed_study_runs_on_the_gpu(study_file) -> None:  # type: ignore[no-untyped-def]
    path = study_file(trainer=", accelerator: gpu")
    assert main(["tune", str(path), "--pack", "4"]) == 0
    assert sum(t.state == TrialState.COMPLETE for t in _trials(load_config(path))) == 6


def test_a_packed_study_with_include_exports_every_site_and_applies_to_a_fresh_model(study_file, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A packed trial used to record only the tuned sites: apply_rates then refused the export
    # ("missing sites ['input_dropout']"), while the same study with pack: 1 worked.
    from droptune import apply_rates, get_rates
    from droptune.testing import TinyModule

    path = study_file(search=", n_trials: 4, pack: 2, include: [dropout]")
    assert main(["tune", str(path), "--no-confirm"]) == 0
    assert main(["export", str(path), "-o", str(tmp_path / "best.yaml")]) == 0
    model = TinyModule()
    built = get_rates(model)["input_dropout"]
    apply_rates(model, str(tmp_path / "best.yaml"))  # raises SiteError if a site is missing
    rates = get_rates(model)
    assert rates["input_dropout"] == pytest.approx(built)  # not tuned: exported at its built rate
    assert set(rates) == {"input_dropout", "dropout"}
