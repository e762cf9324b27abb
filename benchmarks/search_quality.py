"""Search quality: droptune's default search against the textbook prior, vanilla Optuna and random search.

On droptune's built-in tasks, each method is run as its own study for several seeds:

- ``prior``: the textbook rates alone (DESIGN.md's table, one trial);
- ``vanilla``: what a user writes by hand with Optuna: ``TPESampler(seed)``, one
  ``suggest_float(site, 0.0, 0.8)`` per dropout layer, no prior trial, ``MedianPruner()``;
- ``random``: ``RandomSampler(seed)`` over the same space, same pruner;
- ``droptune``: droptune's defaults, built from droptune's own pieces: ``SearchSpace()``
  (granularity ``site``, type-specific ranges), the sampler and pruner the engine builds
  for a default study (``SAMPLERS["tpe"]``, ``PRUNERS["median"]``) and the textbook prior
  enqueued as trial 0;
- variants of droptune's search (``--methods``, see ``METHODS``) to test other defaults.

Every method trains with the same function (same model, data, seeds, epochs, early
stopping, per-epoch ``trial.report`` / ``should_prune``), so only the search differs. The
trial value is the best epoch's validation loss, as in droptune's engine. Training runs
either through Lightning with droptune's own callbacks (``--trainer lightning``, what the
engine does, without MLflow) or through an equivalent plain PyTorch loop
(``--trainer torch``, several times faster on a CPU for these small models).

Reported: best validation loss against trials (complete trials only, mean +- sd over
seeds), the number of trials droptune needs to match vanilla Optuna's final best
(``trials_to_match``), and the test accuracy of each study's best configuration, retrained
on the training split for the best trial's number of epochs (a fresh seed) and scored on
the test split, which no search ever sees.

Usage (from the repository root)::

    .venv/bin/python benchmarks/search_quality.py --help
    .venv/bin/python benchmarks/search_quality.py            # full size (GPU machine)
    .venv/bin/python benchmarks/search_quality.py --seeds 3 --trials 30 --jobs 2 --trainer torch
    .venv/bin/python benchmarks/search_quality.py --budget   # equal wall-clock budget: search_budget.py
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]


def portable(value: Any) -> Any:
    """Paths as written in a results file: relative to the repository, or just the file name."""
    if isinstance(value, Path):
        try:
            return str(value.resolve().relative_to(ROOT))
        except ValueError:
            return value.name
    if isinstance(value, list):
        return [portable(v) for v in value]
    return value

# ----------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """A built-in model on built-in data, sized as in studies/*.yaml."""

    name: str
    model: str  # class path
    model_args: dict[str, Any]
    data: str
    data_args: dict[str, Any]
    max_epochs: int
    patience: int
    # What the test split is scored by: "accuracy" (higher is better) or "mse" (a regression).
    metric: str = "accuracy"

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def build_model(self) -> torch.nn.Module:
        return _import(self.model)(**self.model_args)

    def build_data(self) -> Any:
        return _import(self.data)(**self.data_args)

    def with_train_size(self, size: int | None) -> Task:
        if size is None:
            return self
        return replace(self, data_args={**self.data_args, "train_size": size})


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("mnist1d-mlp", "droptune.models.MLP", {"in_features": 40},
             "droptune.data.Mnist1dDataModule", {"train_size": 4000}, 40, 6),
        Task("mnist1d-cnn", "droptune.models.Mnist1dCNN", {},
             "droptune.data.Mnist1dDataModule", {"train_size": 4000}, 30, 5),
        Task("digits-cnn", "droptune.models.DigitsCNN", {"channels": 32},
             "droptune.data.DigitsDataModule", {"view": "image", "train_size": 400}, 30, 5),
        Task("digits-transformer", "droptune.models.PatchTransformer", {},
             "droptune.data.DigitsDataModule", {"view": "patches", "train_size": 400}, 40, 8),
        Task("digits-mlp", "droptune.models.MLP", {"in_features": 64, "hidden": [256, 256]},
             "droptune.data.DigitsDataModule", {"view": "flat", "train_size": 300}, 40, 6),
        # Kinds droptune was not tuned on (issue 20): benchmarks/extra_tasks.py.
        Task("diabetes-mlp", "extra_tasks.RegressorMLP", {}, "extra_tasks.DiabetesDataModule", {}, 60, 8,
             metric="mse"),
        Task("noisy-digits-mlp", "droptune.models.MLP", {"in_features": 64, "hidden": [256, 256]},
             "extra_tasks.NoisyDigitsDataModule", {"view": "flat", "train_size": 300}, 40, 6),
        Task("mnist1d-small-mlp", "droptune.models.MLP", {"in_features": 40, "hidden": [32, 32]},
             "droptune.data.Mnist1dDataModule", {"train_size": 4000}, 30, 5),
        Task("digits-wide-mlp", "droptune.models.MLP", {"in_features": 64, "hidden": [1024, 1024, 1024]},
             "droptune.data.DigitsDataModule", {"view": "flat", "train_size": 150}, 40, 6),
        Task("digits-rnn", "droptune.models.RecurrentClassifier", {},
             "droptune.data.DigitsDataModule", {"view": "sequence", "train_size": 400}, 30, 5),
    )
}
DEFAULT_TASKS = ("mnist1d-mlp", "mnist1d-cnn", "digits-cnn", "digits-transformer")


def _import(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    if module == "extra_tasks" and str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------- methods

VANILLA_HIGH = 0.8


class UniformSpace:
    """The hand-written space: one ``suggest_float(site, 0, 0.8)`` per dropout layer."""

    def suggest(self, trial: optuna.Trial, sites: Sequence[Any]) -> dict[str, float]:
        return {s.name: trial.suggest_float(s.name, 0.0, VANILLA_HIGH) for s in sites}


@dataclass(frozen=True)
class Method:
    """How one study searches: sampler, pruner, space and whether the prior is trial 0."""

    name: str
    sampler: Callable[[int], optuna.samplers.BaseSampler]
    pruner: Callable[[Any], optuna.pruners.BasePruner]
    space: Callable[[], Any]
    prior: bool
    only_prior: bool = False
    help: str = ""


def _droptune_space(granularity: str | None = None, ranges: Mapping[str, tuple[float, float]] | None = None) -> Any:
    """droptune's SearchSpace: its own default granularity unless a variant names one."""
    from droptune.space import SearchSpace

    if granularity is None:
        return SearchSpace(ranges=ranges)
    return SearchSpace(granularity=granularity, ranges=ranges)  # type: ignore[arg-type]


def _engine_sampler(name: str) -> Callable[[int], optuna.samplers.BaseSampler]:
    from droptune.tuning._factories import SAMPLERS

    return SAMPLERS[name]


def _engine_pruner(name: str) -> Callable[[Any], optuna.pruners.BasePruner]:
    from droptune.tuning._factories import PRUNERS

    return PRUNERS[name]


def _methods() -> dict[str, Method]:
    vanilla_pruner = lambda spec: optuna.pruners.MedianPruner()  # noqa: E731
    methods = [
        Method("prior", _engine_sampler("tpe"), _engine_pruner("median"), _droptune_space, True, True,
               "the textbook rates alone (droptune's trial 0)"),
        Method("vanilla", lambda seed: optuna.samplers.TPESampler(seed=seed), vanilla_pruner, UniformSpace, False,
               help="TPESampler(seed), uniform [0, 0.8] per site, no prior, MedianPruner()"),
        Method("random", lambda seed: optuna.samplers.RandomSampler(seed=seed), vanilla_pruner, UniformSpace, False,
               help="RandomSampler(seed) over the vanilla space, MedianPruner()"),
        Method("droptune", _engine_sampler("tpe"), _engine_pruner("median"), _droptune_space, True,
               help="droptune's defaults (engine's sampler, pruner, space, prior trial)"),
        # Variants: one change each against "droptune".
        Method("dt-type", _engine_sampler("tpe"), _engine_pruner("median"),
               lambda: _droptune_space("type"), True,
               help="granularity: type (now the default; kept so the run that chose it can be repeated)"),
        Method("dt-site", _engine_sampler("tpe"), _engine_pruner("median"),
               lambda: _droptune_space("site"), True, help="granularity: site (one variable per dropout layer)"),
        Method("dt-c2f", _engine_sampler("tpe"), _engine_pruner("median"),
               lambda: _droptune_space("coarse-to-fine"), True,
               help="granularity: coarse-to-fine (tied per type for 20 trials, then per-site scales)"),
        Method("dt-startup10", lambda seed: optuna.samplers.TPESampler(
                   seed=seed, multivariate=True, group=True, n_startup_trials=10),
               _engine_pruner("median"), _droptune_space, True,
               help="TPE with Optuna's 10 start-up trials (the default before 5)"),
        Method("dt-gp", _engine_sampler("gp"), _engine_pruner("median"), _droptune_space, True,
               help="GPSampler"),
        Method("dt-gp5", lambda seed: optuna.samplers.GPSampler(seed=seed, n_startup_trials=5),
               _engine_pruner("median"), _droptune_space, True, help="GPSampler(n_startup_trials=5)"),
        Method("dt-patient", _engine_sampler("tpe"),
               lambda spec: optuna.pruners.PatientPruner(_engine_pruner("median")(spec), patience=2),
               _droptune_space, True, help="PatientPruner(median, patience=2): prune only trials that stopped improving"),
        Method("dt-nopruner", _engine_sampler("tpe"), _engine_pruner("none"), _droptune_space, True,
               help="no pruner"),
        Method("dt-hyperband", _engine_sampler("tpe"), _engine_pruner("hyperband"), _droptune_space, True,
               help="the engine's HyperbandPruner (min_resource: the warm-up, a quarter of max_epochs)"),
        Method("dt-warmup", _engine_sampler("tpe"),
               lambda spec: optuna.pruners.MedianPruner(n_startup_trials=5,
                                                        n_warmup_steps=max(2, spec.trainer.max_epochs // 4)),
               _droptune_space, True, help="MedianPruner(n_startup_trials=5, n_warmup_steps=max_epochs // 4)"),
        Method("dt-noprior", _engine_sampler("tpe"), _engine_pruner("median"), _droptune_space, False,
               help="no prior trial"),
        Method("dt-warmup2", _engine_sampler("tpe"),
               lambda spec: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
               _droptune_space, True, help="the median pruner before issue 15: a fixed 2-epoch warm-up"),
    ]
    return {m.name: m for m in methods}


DEFAULT_METHODS = ("prior", "vanilla", "random", "droptune")

# ----------------------------------------------------------------------------- training


@dataclass
class Fit:
    """The outcome of one training run."""

    value: float  # best validation loss over the epochs run
    best_epoch: int
    epochs: int
    pruned: bool
    history: list[float] = field(default_factory=list)


def tensors(data: Any) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The train/val/test tensors of a built-in SplitDataModule."""
    data.setup("fit")
    return {
        "train": data.train_dataset.tensors,
        "val": data.val_dataset.tensors,
        "test": data.test_dataset.tensors,
    }


def fit_torch(
    task: Task, data: Any, rates: Mapping[str, float], *, seed: int, max_epochs: int,
    patience: int | None, trial: optuna.Trial | None,
) -> tuple[Fit, torch.nn.Module]:
    """Train with a plain PyTorch loop that mirrors droptune's engine.

    Same model, optimiser (the module's ``configure_optimizers``), batch size and loss;
    each epoch ends with the validation loss in eval mode, ``trial.report`` and
    ``should_prune``, then early stopping with ``patience`` (strict improvement, as
    Lightning's EarlyStopping). The value is the best epoch's validation loss.
    """
    from droptune.sites import apply_rates

    torch.manual_seed(seed)
    model = task.build_model()
    apply_rates(model, dict(rates))
    optimizer = model.configure_optimizers()
    split = data["tensors"]
    x, y = split["train"]
    vx, vy = split["val"]
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    best, best_epoch, wait, pruned = math.inf, 0, 0, False
    for epoch in range(max_epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), data["batch_size"]):
            rows = order[start : start + data["batch_size"]]
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val = float(model.loss_fn(model(vx), vy))
        if not math.isfinite(val):
            break
        history.append(val)
        if val < best:
            best, best_epoch, wait = val, epoch, 0
        else:
            wait += 1
        if trial is not None:
            trial.report(val, step=epoch)
            if trial.should_prune():
                pruned = True
                break
        if patience and wait >= patience:
            break
    return Fit(best, best_epoch, len(history), pruned, history), model


def fit_lightning(
    task: Task, data: Any, rates: Mapping[str, float], *, seed: int, max_epochs: int,
    patience: int | None, trial: optuna.Trial | None, integration: bool = False,
) -> tuple[Fit, torch.nn.Module]:
    """Train as droptune's engine does: ``Trainer.fit`` with GapCallback, PruningCallback, EarlyStopping.

    ``integration``: prune with optuna-integration's ``PyTorchLightningPruningCallback``
    instead (what a hand-written Optuna study uses), and measure no gap.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping

    from droptune.callbacks import GapCallback, PruningCallback
    from droptune.sites import apply_rates

    pl.seed_everything(seed, workers=True, verbose=False)
    model = task.build_model()
    apply_rates(model, dict(rates))
    gap = GapCallback(metrics=("val_loss", "val_acc"), seed=seed)
    callbacks: list[pl.Callback] = [gap]
    pruning = PruningCallback(trial, gap, "val_loss") if trial is not None and not integration else None
    if pruning is not None:
        callbacks.append(pruning)
    if trial is not None and integration:
        from optuna_integration import PyTorchLightningPruningCallback

        callbacks.append(PyTorchLightningPruningCallback(trial, monitor="val_loss"))
    if patience:
        callbacks.append(EarlyStopping("val_loss", patience=patience, mode="min"))
    trainer = pl.Trainer(
        max_epochs=max_epochs, accelerator="auto", devices=1, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    pruned = False
    try:
        trainer.fit(model, datamodule=data["module"])
    except optuna.TrialPruned:  # optuna-integration's callback raises it out of fit
        pruned = True
    history = [r["val_loss"] for r in gap.history]
    if not history:  # pruned at epoch 0 by optuna-integration's callback (it raises before the gap's record)
        return Fit(math.inf, 0, 0, pruned, []), model
    best_epoch = int(np.argmin(history))
    pruned = pruned or (pruning is not None and pruning.pruned_at is not None)
    return Fit(history[best_epoch], best_epoch, len(history), pruned, history), model.cpu()


TRAINERS = {"torch": fit_torch, "lightning": fit_lightning}


def test_scores(model: torch.nn.Module, data: Any) -> tuple[float, float]:
    """``(score, loss)`` of ``model`` on the test split: accuracy and cross-entropy of a
    classifier; for a regression (float targets), the mean squared error twice."""
    tx, ty = data["tensors"]["test"]
    model.eval()
    with torch.no_grad():
        out = model(tx.to(model.device) if hasattr(model, "device") else tx).cpu()
    if ty.is_floating_point():
        mse = float(torch.nn.functional.mse_loss(out.reshape(ty.shape), ty))
        return mse, mse
    return float((out.argmax(-1) == ty).float().mean()), float(torch.nn.functional.cross_entropy(out, ty))


# ----------------------------------------------------------------------------- one study


@dataclass(frozen=True)
class Job:
    """One study: a task (maybe resized) searched by one method with one seed."""

    task: Task
    method: str
    seed: int
    trials: int
    max_epochs: int
    patience: int | None
    trainer: str
    retrain: bool = True


def load_data(task: Task, trainer: str) -> dict[str, Any]:
    module = task.build_data()
    out = {"tensors": tensors(module), "batch_size": module.batch_size}
    if trainer == "lightning":
        out["module"] = module
    return out


def task_sites(task: Task, data: dict[str, Any]) -> list[Any]:
    """The model's dropout sites, typed by a forward pass on training inputs (as the engine does)."""
    from droptune.sites import discover

    return discover(task.build_model(), data["tensors"]["train"][0][:8])


def run_job(job: Job) -> dict[str, Any]:
    """Run one study (ask/tell, in memory) and retrain its best configuration."""
    torch.set_num_threads(1)
    _quiet()
    from droptune.config import spec_from_dict
    from droptune.record import rates_by_type

    started = time.monotonic()
    method = _methods()[job.method]
    task = job.task
    data = load_data(task, job.trainer)
    fit = TRAINERS[job.trainer]
    space = method.space()
    sites = task_sites(task, data)
    if hasattr(space, "select"):
        sites = space.select(sites)
    layer_types = {s.name: s.layer_type for s in sites}
    spec = spec_from_dict({
        "name": f"{task.name}-{job.method}-{job.seed}",
        "model": {"class_path": task.model, "init_args": task.model_args},
        "data": {"class_path": task.data, "init_args": task.data_args},
        "trainer": {"max_epochs": job.max_epochs, "early_stopping_patience": job.patience},
        "seed": job.seed,
    })
    study = optuna.create_study(
        study_name=spec.name, direction="minimize", sampler=method.sampler(job.seed), pruner=method.pruner(spec)
    )
    if method.prior:
        study.enqueue_trial(space.prior_params(sites), user_attrs={"prior": True})
    n_trials = 1 if method.only_prior else job.trials
    trials: list[dict[str, Any]] = []
    for number in range(n_trials):
        trial = study.ask()
        rates = space.suggest(trial, sites)
        trial.set_user_attr("rates", rates)
        trial.set_user_attr("layer_types", layer_types)
        trial.set_user_attr("rates_by_type", rates_by_type(rates, layer_types))
        t0 = time.monotonic()
        result, _ = fit(task, data, rates, seed=1000 * job.seed + number, max_epochs=job.max_epochs,
                        patience=job.patience, trial=trial)
        trial.set_user_attr("best_epoch", result.best_epoch)
        if not math.isfinite(result.value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state = "failed"
        elif result.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            state = "pruned"
        else:
            study.tell(trial, result.value)
            state = "complete"
        trials.append({
            "number": number, "state": state, "value": result.value if state == "complete" else None,
            "last_value": result.history[-1] if result.history else None, "epochs": result.epochs,
            "best_epoch": result.best_epoch, "rates": rates, "seconds": round(time.monotonic() - t0, 3),
        })
    complete = [t for t in trials if t["state"] == "complete"]
    out: dict[str, Any] = {
        "task": task.name, "method": job.method, "seed": job.seed, "train_size": task.data_args.get("train_size"),
        "layer_types": layer_types, "trials": trials,
        "best_curve": best_so_far([t["value"] for t in trials]),
    }
    if complete:
        best = min(complete, key=lambda t: t["value"])
        out["best"] = {"number": best["number"], "value": best["value"], "rates": best["rates"],
                       "best_epoch": best["best_epoch"]}
        out["recommendation"] = recommend_by_type(study)
        if job.retrain:
            result, model = fit(task, data, best["rates"], seed=10**6 + job.seed, max_epochs=best["best_epoch"] + 1,
                                patience=None, trial=None)
            accuracy, loss = test_scores(model, data)
            out["test"] = {"accuracy": accuracy, "loss": loss, "epochs": result.epochs}
    out["seconds"] = round(time.monotonic() - started, 2)
    return out


def seed_noise(task: Task, rates: Mapping[str, float], *, seeds: int, max_epochs: int, patience: int | None,
               trainer: str) -> list[float]:
    """A trial's value for one configuration trained with ``seeds`` fresh training seeds.

    Every trial trains with its own seed, so a study's best value is partly luck: its sd
    over seeds is the noise floor under which no search can tell configurations apart.
    """
    torch.set_num_threads(1)
    _quiet()
    data = load_data(task, trainer)
    fit = TRAINERS[trainer]
    return [fit(task, data, rates, seed=10**7 + i, max_epochs=max_epochs, patience=patience, trial=None)[0].value
            for i in range(seeds)]


def _noise_job(args: tuple[Task, dict[str, float], int, int, int | None, str]) -> list[float]:
    task, rates, seeds, max_epochs, patience, trainer = args
    return seed_noise(task, rates, seeds=seeds, max_epochs=max_epochs, patience=patience, trainer=trainer)


def measure_noise(summary: dict[str, Any], jobs: Sequence[Job], seeds: int, n_procs: int,
                  reference: str = "vanilla") -> None:
    """Add ``noise`` to each task: the reference's best configuration retrained with ``seeds`` seeds."""
    wanted = []
    for name, entry in summary.items():
        ref = entry["methods"].get(reference)
        job = next((j for j in jobs if j.task.name == name), None)
        if not ref or job is None:
            continue
        per_seed = [(v, r) for v, r in zip(ref["final_best_per_seed"], ref["best_rates_per_seed"]) if r]
        if not per_seed:
            continue
        rates = min(per_seed, key=lambda pair: pair[0])[1]
        wanted.append((name, (job.task, rates, seeds, job.max_epochs, job.patience, job.trainer)))
    if n_procs > 1:
        with multiprocessing.get_context("spawn").Pool(min(n_procs, len(wanted) or 1)) as pool:
            values = pool.map(_noise_job, [w[1] for w in wanted])
    else:
        values = [_noise_job(w[1]) for w in wanted]
    for (name, args), vals in zip(wanted, values):
        summary[name]["noise"] = {"rates": args[1], "values": vals, "mean": statistics.fmean(vals),
                                  "sd": statistics.stdev(vals) if len(vals) > 1 else None}


def best_so_far(values: Sequence[float | None]) -> list[float | None]:
    """Running minimum over the complete trials' values (None until the first one)."""
    out, best = [], math.inf
    for v in values:
        if v is not None:
            best = min(best, v)
        out.append(best if math.isfinite(best) else None)
    return out


def recommend_by_type(study: optuna.Study, top: float = 0.2) -> dict[str, dict[str, float]] | None:
    """droptune's recommendation per layer type (median over the top 20 %, >= 3 trials)."""
    try:
        from droptune.recommend import compute
    except ImportError:  # the statistic itself, from the trials' user attrs
        compute = None
    if compute is not None:
        try:
            items, _ = compute(study, top=top, by="type")
        except Exception as err:  # too few complete trials
            logging.getLogger(__name__).debug("no recommendation: %s", err)
            return None
        return {r.layer_type: {"recommended": r.recommended, "low": r.low, "high": r.high, "best": r.best}
                for r in items}
    done = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    if len(done) < 3:
        return None
    kept = done[: max(3, math.ceil(top * len(done)))]
    types = kept[0].user_attrs["rates_by_type"]
    out = {}
    for name in types:
        rates = [t.user_attrs["rates_by_type"][name] for t in kept]
        q1, q2, q3 = np.percentile(rates, [25, 50, 75])
        out[name] = {"recommended": float(q2), "low": float(q1), "high": float(q3), "best": types[name]}
    return out


def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def run_jobs(jobs: Sequence[Job], n_procs: int, log_path: Path | None = None) -> list[dict[str, Any]]:
    """Run ``jobs`` in ``n_procs`` processes (longest first), logging each as it ends."""
    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    started = time.monotonic()

    def note(i: int, res: dict[str, Any]) -> None:
        results[i] = res
        done = sum(r is not None for r in results)
        best = res.get("best", {}).get("value")
        line = (f"[{time.monotonic() - started:7.0f}s] {done}/{len(jobs)} {res['task']} (n={res['train_size']}) "
                f"{res['method']} seed {res['seed']}: best {best if best is None else round(best, 4)} "
                f"test acc {res.get('test', {}).get('accuracy')} in {res['seconds']}s")
        print(line, file=sys.stderr, flush=True)
        if log_path:
            with log_path.open("a") as fh:
                fh.write(json.dumps(res) + "\n")

    if n_procs <= 1:
        for i in order:
            note(i, run_job(jobs[i]))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(n_procs, maxtasksperchild=4) as pool:
            pending = {i: pool.apply_async(run_job, (jobs[i],)) for i in order}
            while pending:
                for i in list(pending):
                    if pending[i].ready():
                        note(i, pending.pop(i).get())
                time.sleep(0.5)
    return [r for r in results if r is not None]


def _cost(job: Job) -> float:
    size = job.task.data_args.get("train_size", 1000)
    return (1 if job.method == "prior" else job.trials) * job.max_epochs * size


# ----------------------------------------------------------------------------- summary


def mean_sd(rows: Sequence[Sequence[float | None]]) -> tuple[list[float | None], list[float | None]]:
    """Per-position mean and sd over seeds (positions where a seed has no value are skipped)."""
    means, sds = [], []
    for column in zip(*rows):
        vals = [v for v in column if v is not None]
        means.append(statistics.fmean(vals) if vals else None)
        sds.append(statistics.stdev(vals) if len(vals) > 1 else (0.0 if vals else None))
    return means, sds


def trials_to_match(curve: Sequence[float | None], target: float) -> int | None:
    """First trial count (1-based) at which ``curve`` reaches ``target`` or lower; None if never."""
    for n, v in enumerate(curve, start=1):
        if v is not None and v <= target + 1e-12:
            return n
    return None


def summarize(results: Sequence[dict[str, Any]], trials: int, reference: str = "vanilla") -> dict[str, Any]:
    """Per task and method: curves (mean, sd), final best, test accuracy; trials_to_match vs ``reference``."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        by.setdefault(r["task"], {}).setdefault(r["method"], []).append(r)
    summary: dict[str, Any] = {}
    for task, methods in by.items():
        entry: dict[str, Any] = {"methods": {}}
        for name, runs in methods.items():
            runs = sorted(runs, key=lambda r: r["seed"])
            length = trials if name != "prior" else 1
            curves = [(r["best_curve"] + [r["best_curve"][-1]] * length)[:length] for r in runs]
            if name == "prior":  # one trial: the same value at every budget
                curves = [[c[0]] * trials for c in curves]
            mean, sd = mean_sd(curves)
            finals = [c[-1] for c in curves if c[-1] is not None]
            accs = [r["test"]["accuracy"] for r in runs if "test" in r]
            entry["methods"][name] = {
                "seeds": [r["seed"] for r in runs],
                "curve_mean": mean, "curve_sd": sd,
                "final_best_mean": statistics.fmean(finals) if finals else None,
                "final_best_sd": statistics.stdev(finals) if len(finals) > 1 else None,
                "final_best_per_seed": finals,
                "test_accuracy_mean": statistics.fmean(accs) if accs else None,
                "test_accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else None,
                "test_accuracy_per_seed": accs,
                "trials_per_seed": [len(r["trials"]) for r in runs],
                "pruned_fraction": statistics.fmean(
                    [sum(t["state"] == "pruned" for t in r["trials"]) / len(r["trials"]) for r in runs]),
                "seconds_per_seed": [r["seconds"] for r in runs],
                "best_rates_per_seed": [r.get("best", {}).get("rates") for r in runs],
            }
        ref = entry["methods"].get(reference)
        if ref and ref["final_best_mean"] is not None:
            target = ref["final_best_mean"]
            entry["reference"] = {"method": reference, "trials": trials, "final_best_mean": target}
            entry["trials_to_match"] = {}
            for name, m in entry["methods"].items():
                if name == "prior":
                    continue
                entry["trials_to_match"][name] = trials_to_match(m["curve_mean"], target)
                m["trials_to_match_per_seed"] = [
                    trials_to_match(
                        (r["best_curve"] + [r["best_curve"][-1]] * trials)[:trials], target)
                    for r in sorted(methods[name], key=lambda r: r["seed"])
                ]
        prior = entry["methods"].get("prior")
        dt = entry["methods"].get("droptune")
        if dt and ref:
            ttm = entry["trials_to_match"].get("droptune")
            entry["goal"] = {  # None: not measured (no prior study in this run)
                "match_vanilla_within_15": ttm is not None and ttm <= 15,
                "beats_prior_val": None if not prior else bool(dt["final_best_mean"] < prior["final_best_mean"]),
                "beats_prior_test_acc": None if not prior else bool(
                    dt["test_accuracy_mean"] is not None and dt["test_accuracy_mean"] > prior["test_accuracy_mean"]),
            }
        summary[task] = entry
    return summary


def markdown(summary: dict[str, Any], trials: int, methods: Sequence[str]) -> str:
    """The results as markdown tables."""
    lines = [
        f"Best validation loss after 1 / 5 / 15 / {trials} trials (mean ± sd over seeds), test accuracy of the "
        "best configuration retrained on the training split (mean ± sd), and trials needed to reach vanilla "
        f"Optuna's {trials}-trial mean best (mean curve; per seed in brackets, `-` = not reached).",
        "",
        f"| task | method | best@1 | best@5 | best@15 | best@{trials} | test acc | trials to match vanilla@{trials} |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(mean: Sequence[float | None], sd: Sequence[float | None], n: int) -> str:
        i = min(n, len(mean)) - 1
        return "–" if mean[i] is None else f"{mean[i]:.4f} ± {sd[i]:.4f}"

    for task, entry in summary.items():
        for name in methods:
            m = entry["methods"].get(name)
            if m is None:
                continue
            acc = "–" if m["test_accuracy_mean"] is None else (
                f"{m['test_accuracy_mean']:.4f} ± {m['test_accuracy_sd'] or 0:.4f}")
            ttm = entry.get("trials_to_match", {}).get(name)
            per_seed = m.get("trials_to_match_per_seed")
            match = "–" if name == "prior" else (
                f"{ttm if ttm is not None else '-'} ({', '.join(str(x) if x else '-' for x in per_seed)})"
                if per_seed is not None else str(ttm))
            row = [cell(m["curve_mean"], m["curve_sd"], n) for n in (1, 5, 15, trials)]
            lines.append(f"| {task} | {name} | {' | '.join(row)} | {acc} | {match} |")
    lines += ["", "| task | droptune matches vanilla in ≤ 15 trials | beats prior (val loss) | beats prior (test acc) |",
              "|---|---|---|---|"]
    for task, entry in summary.items():
        g = entry.get("goal")
        if g:
            yes = lambda b: "–" if b is None else ("yes" if b else "**no**")  # noqa: E731
            lines.append(f"| {task} | {yes(g['match_vanilla_within_15'])} "
                         f"({entry['trials_to_match'].get('droptune')}) | {yes(g['beats_prior_val'])} "
                         f"| {yes(g['beats_prior_test_acc'])} |")
    noisy = {task: entry for task, entry in summary.items() if entry.get("noise")}
    if noisy:
        lines += ["", f"Trial noise: vanilla's best configuration retrained with fresh seeds (value mean ± sd), "
                  f"against the distance between droptune's best after 15 trials and vanilla's after {trials}.", "",
                  f"| task | seeds | value of vanilla's best config | droptune@15 − vanilla@{trials} | in sd |",
                  "|---|---|---|---|---|"]
        for task, entry in noisy.items():
            noise = entry["noise"]
            dt, ref = entry["methods"].get("droptune"), entry.get("reference")
            gap = None
            if dt and ref and dt["curve_mean"][min(15, trials) - 1] is not None:
                gap = dt["curve_mean"][min(15, trials) - 1] - ref["final_best_mean"]
            in_sd = "–" if gap is None or not noise["sd"] else f"{gap / noise['sd']:+.2f}"
            lines.append(f"| {task} | {len(noise['values'])} | {noise['mean']:.4f} ± {noise['sd'] or 0:.4f} "
                         f"| {'–' if gap is None else f'{gap:+.4f}'} | {in_sd} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], trials: int, methods: Sequence[str], path: Path) -> None:
    """Best validation loss against trials, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    cols = min(2, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 4.2 * rows), squeeze=False)
    x = np.arange(1, trials + 1)
    for ax, task in zip(axes.flat, tasks):
        entry = summary[task]
        for name in methods:
            m = entry["methods"].get(name)
            if m is None:
                continue
            mean = np.array([np.nan if v is None else v for v in m["curve_mean"]], dtype=float)
            sd = np.array([np.nan if v is None else v for v in m["curve_sd"]], dtype=float)
            style = {"prior": dict(color="k", ls="--"), "vanilla": dict(color="tab:blue"),
                     "random": dict(color="tab:gray"), "droptune": dict(color="tab:red", lw=2)}.get(name, {})
            ax.plot(x, mean, label=name, **style)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.15, color=style.get("color"))
        if "reference" in entry:
            ax.axhline(entry["reference"]["final_best_mean"], color="tab:blue", ls=":", lw=1)
        if trials >= 15:
            ax.axvline(15, color="0.7", ls=":", lw=1)
        ax.set_xlim(1, trials)
        ax.set_title(task)
        ax.set_xlabel("trials")
        ax.set_ylabel("best validation loss")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- CLI


def task_settings(args: argparse.Namespace, name: str) -> tuple[Task, int, int | None]:
    """Task ``name`` at the command line's sizes, with its epochs and patience."""
    task = TASKS[name]
    if task.data.endswith("Mnist1dDataModule") and name != "mnist1d-small-mlp":  # that one needs its data
        task = task.with_train_size(args.mnist1d_train_size)
    elif args.digits_train_size:
        task = task.with_train_size(args.digits_train_size)
    max_epochs = min(task.max_epochs, args.max_epochs) if args.max_epochs else task.max_epochs
    patience = args.patience if args.patience is not None else task.patience
    return task, max_epochs, patience


def make_jobs(args: argparse.Namespace) -> list[Job]:
    jobs = []
    for name in args.tasks:
        task, max_epochs, patience = task_settings(args, name)
        for method in args.methods:
            for seed in range(args.seeds):
                jobs.append(Job(task, method, seed, args.trials, max_epochs, patience, args.trainer))
    return jobs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="methods:\n" + "\n".join(f"  {m.name:13s} {m.help}" for m in _methods().values()))
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), choices=list(TASKS))
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=[*_methods(), "nodrop"],
                   help="nodrop (every site at 0: a --budget arm only) and the methods below")
    p.add_argument("--seeds", type=int, default=5, help="studies per task and method (seeds 0..N-1; default 5)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="--budget: start at this seed (a second process can run other seeds; merge with --reuse)")
    p.add_argument("--trials", type=int, default=60, help="trials per study (default 60)")
    p.add_argument("--max-epochs", type=int, default=None, help="cap on each task's max_epochs (default: the task's)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: the task's)")
    p.add_argument("--mnist1d-train-size", type=int, default=None, help="MNIST-1D training rows (default 4000)")
    p.add_argument("--digits-train-size", type=int, default=None, help="digits training rows (default: the task's)")
    p.add_argument("--trainer", choices=list(TRAINERS), default="lightning",
                   help="lightning (the engine's Trainer + callbacks; default) or torch (plain loop, faster on CPU)")
    p.add_argument("--jobs", type=int, default=1, help="studies run in parallel processes (default 1)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    p.add_argument("--prefix", default="search_quality", help="file name stem of the results")
    p.add_argument("--noise-seeds", type=int, default=0,
                   help="retrain vanilla's best configuration with N seeds to measure the trial noise (default 0: off)")
    p.add_argument("--reuse", type=Path, default=None,
                   help="a .jsonl log of an earlier run: its finished studies are not run again")
    budget = p.add_argument_group("equal wall-clock budget (--budget; see benchmarks/search_budget.py)")
    budget.add_argument("--budget", action="store_true",
                        help="give every method the same seconds per task and seed; score the exported config")
    budget.add_argument("--budget-s", type=float, default=None,
                        help="seconds per study (default: what vanilla needs for --trials trials)")
    budget.add_argument("--score-seeds", type=int, default=5, help="fresh-seed retrains scoring each export (default 5)")
    budget.add_argument("--confirm-top", type=int, default=3, help="droptune: finalists confirmed at most (default 3)")
    budget.add_argument("--confirm-seeds", type=int, default=3, help="droptune: retrains per finalist (default 3)")
    budget.add_argument("--confirm-share", type=float, default=0.3,
                        help="droptune: share of the budget kept for confirmation (default 0.3)")
    budget.add_argument("--pack", type=int, default=1, help="droptune: trials per packed population (default 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.budget:
        from search_budget import run_budget

        return run_budget(args, argv)
    jobs = make_jobs(args)
    log_path = args.out / f"{args.prefix}.jsonl"
    done: list[dict[str, Any]] = []
    if args.reuse and args.reuse.exists():
        wanted = {(j.task.name, j.method, j.seed) for j in jobs}
        done = [r for r in map(json.loads, args.reuse.read_text().splitlines())
                if (r["task"], r["method"], r["seed"]) in wanted]
        have = {(r["task"], r["method"], r["seed"]) for r in done}
        jobs = [j for j in jobs if (j.task.name, j.method, j.seed) not in have]
    if args.reuse != log_path and log_path.exists():
        log_path.unlink()
    if done and args.reuse != log_path:
        log_path.write_text("".join(json.dumps(r) + "\n" for r in done))
    started = time.monotonic()
    results = done + run_jobs(jobs, args.jobs, log_path)
    wall = time.monotonic() - started
    summary = summarize(results, args.trials)
    if args.noise_seeds:
        measure_noise(summary, make_jobs(args), args.noise_seeds, args.jobs)
    command = "python benchmarks/search_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    previous = args.out / f"{args.prefix}.json"
    if not jobs and previous.exists():  # only re-summarised: keep the run's own command and time
        old = json.loads(previous.read_text())
        command, wall = old["command"], old["wall_seconds"]
    report = {
        "command": command, "args": {k: portable(v) for k, v in vars(args).items()},
        "wall_seconds": round(wall, 1), "cpu": os.cpu_count(),
        "cuda": torch.cuda.is_available(), "tasks": summary,
        "trials_to_match": {t: e.get("trials_to_match", {}).get("droptune") for t, e in summary.items()},
    }
    (args.out / f"{args.prefix}.json").write_text(json.dumps(report, indent=1))
    methods = list(args.methods)
    table = markdown(summary, args.trials, methods)
    (args.out / f"{args.prefix}.md").write_text(
        f"# Search quality\n\nCommand: `{command}` ({wall / 60:.1f} min wall, "
        f"{'GPU' if torch.cuda.is_available() else f'{os.cpu_count()}-core CPU'})\n\n{table}")
    plot(summary, args.trials, methods, args.out / f"{args.prefix}.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
