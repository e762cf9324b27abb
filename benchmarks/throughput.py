"""Throughput of droptune against the hand-written Optuna + Lightning recipe, side by side.

One command runs every configuration on the same device and the same workload, each in a
fresh process and a fresh folder (its own Optuna storage and MLflow store):

- ``recipe``: Optuna + Lightning as Optuna's docs write it: ``suggest_float`` per dropout
  layer, optuna-integration's ``PyTorchLightningPruningCallback`` and ``MLflowCallback``;
- ``droptune``: ``droptune tune``, one trial at a time;
- ``droptune_workers_K``: ``droptune tune --workers K --workers-per-gpu K`` (K processes
  sharing the device and one SQLite study);
- ``droptune_packed_K``: ``droptune tune --pack K`` (K trials trained as one vectorised
  population).

The workload is the MLP of the issue (``256 -> 1024 -> 1024 -> 10``, three dropouts, 2000
training rows, batch 128, 20 trials of at most 20 epochs, median pruner, TPE); ``--quick``
shrinks it so that a 2-core CPU runs everything in minutes. A second check trains one
GPU-bound model (a wide MLP, large batches) with a bare Lightning ``fit`` and with droptune
unpacked (one trial): droptune must stay within 5 % of it.

Reported per configuration: trial-epochs per second (epochs actually trained, summed over
trials, per second of tuning), trials per minute, mean GPU utilisation (``pynvml`` or
``nvidia-smi`` when present, else null), peak memory (``torch.cuda.max_memory_allocated``
on a GPU, peak RSS on a CPU), the best validation loss (over all trials and over the first
``n_trials`` trials, for packed runs that ran more), and each ratio to the recipe.

Usage::

    pip install -e '.[bench]'
    python benchmarks/throughput.py            # full workload (meant for a GPU)
    python benchmarks/throughput.py --quick    # reduced sizes, a few minutes on a CPU
    python benchmarks/throughput.py --quick --configs recipe,packed_8 --profile
    python benchmarks/throughput.py --bookkeeping --tree before=DIR --tree after=.  # compute-free study

Results: ``benchmarks/results/throughput.json`` and ``throughput.md`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from typing_extensions import Self

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results"


@dataclass(frozen=True)
class Workload:
    """What every configuration trains."""

    in_features: int = 256
    hidden: tuple[int, ...] = (1024, 1024)
    num_classes: int = 10
    n_train: int = 2000
    n_val: int = 500
    batch_size: int = 128
    n_trials: int = 20
    max_epochs: int = 20
    packs: tuple[int, ...] = (8, 32, 128)
    workers: int = 4
    # The GPU-bound check: a wide MLP on large batches, one trial.
    wide_in: int = 1024
    wide_hidden: tuple[int, ...] = (8192, 8192, 8192)
    wide_train: int = 65536
    wide_val: int = 4096
    wide_batch: int = 2048
    wide_epochs: int = 5
    # trainer.gap_subset of the GPU-bound check's droptune side (None: as large as validation).
    wide_gap_subset: int | float | None = None


FULL = Workload()
QUICK = Workload(
    in_features=64,
    hidden=(256, 256),
    n_train=500,
    n_val=200,
    batch_size=64,
    n_trials=8,
    max_epochs=4,
    packs=(8, 32, 128),
    workers=2,
    wide_in=256,
    wide_hidden=(1024, 1024),
    wide_train=16384,
    wide_val=512,
    wide_batch=1024,
    wide_epochs=2,
)


# --------------------------------------------------------------------------------------------
# Data for the GPU-bound check: generated with torch in a blink (sklearn would take minutes).
# --------------------------------------------------------------------------------------------


def _synthetic_module():  # type: ignore[no-untyped-def]
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class SyntheticDataModule(pl.LightningDataModule):
        """Random inputs labelled by a fixed random linear teacher (seeded)."""

        def __init__(
            self,
            *,
            n_train: int,
            n_val: int,
            in_features: int,
            num_classes: int = 10,
            batch_size: int = 512,
            seed: int = 0,
        ) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(n_train + n_val, in_features, generator=g)
            teacher = torch.randn(in_features, num_classes, generator=g)
            y = (x @ teacher).argmax(dim=1)
            self.train_set = TensorDataset(x[:n_train], y[:n_train])
            self.val_set = TensorDataset(x[n_train:], y[n_train:])
            self.batch_size, self.seed = batch_size, seed

        def train_dataloader(self) -> DataLoader:
            return DataLoader(
                self.train_set,
                batch_size=self.batch_size,
                shuffle=True,
                generator=torch.Generator().manual_seed(self.seed),
            )

        def val_dataloader(self) -> DataLoader:
            return DataLoader(self.val_set, batch_size=self.batch_size)

    return SyntheticDataModule


def __getattr__(name: str) -> Any:  # `throughput.SyntheticDataModule` for study files, built lazily
    if name == "SyntheticDataModule":
        return _synthetic_module()
    raise AttributeError(name)


# --------------------------------------------------------------------------------------------
# Measurement helpers (run inside each configuration's process).
# --------------------------------------------------------------------------------------------


class DeviceMonitor:
    """Sample GPU utilisation and memory every ``interval`` seconds (pynvml, else nvidia-smi)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.util: list[float] = []
        self.memory_mib: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read = self._reader()

    def _reader(self):  # type: ignore[no-untyped-def]
        nvml = _nvml_reader()
        if nvml is not None:
            return nvml
        if shutil.which("nvidia-smi"):

            def read() -> tuple[float, float]:
                out = subprocess.run(
                    [
                        "nvidia-smi",
                        "--query-gpu=utilization.gpu,memory.used",
                        "--format=csv,noheader,nounits",
                        "-i",
                        "0",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                ).stdout.split(",")
                return float(out[0]), float(out[1])

            return read
        return None

    def __enter__(self) -> Self:
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                util, memory = self._read()
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                continue  # one missed sample (a slow or busy nvidia-smi)
            self.util.append(util)
            self.memory_mib.append(memory)

    def summary(self) -> dict[str, float | None]:
        return {
            "gpu_util_mean": round(sum(self.util) / len(self.util), 1) if self.util else None,
            "gpu_memory_used_peak_mib": round(max(self.memory_mib), 1) if self.memory_mib else None,
        }


def _nvml_reader():  # type: ignore[no-untyped-def]
    """``() -> (utilisation %, memory used MiB)`` of GPU 0 through pynvml, or None."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except pynvml.NVMLError as err:  # no driver or no device
        print(f"[throughput] pynvml: {err}", file=sys.stderr)
        return None
    return lambda: (
        float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
        pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20,
    )


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {name} ({os.cpu_count()} cores)"


def peak_memory(children: bool = False) -> dict[str, Any]:
    import torch

    if torch.cuda.is_available() and not children:
        return {
            "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "memory_kind": "cuda_allocated",
        }
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    kind = "rss_max_child_process" if children else "rss"
    return {
        "peak_memory_mib": round(resource.getrusage(who).ru_maxrss / 1024, 1),
        "memory_kind": kind,
    }


def study_yaml(w: Workload, *, name: str, n_trials: int, pack: int | str = 1) -> str:
    return textwrap.dedent(
        f"""
        name: {name}
        model:
          class_path: droptune.models.MLP
          init_args: {{in_features: {w.in_features}, hidden: {list(w.hidden)}, num_classes: {w.num_classes}, lr: 0.001}}
        data:
          class_path: droptune.testing.TinyDataModule
          init_args: {{n_train: {w.n_train}, n_val: {w.n_val}, in_features: {w.in_features},
                       num_classes: {w.num_classes}, batch_size: {w.batch_size}}}
        search: {{n_trials: {n_trials}, sampler: tpe, pruner: median, pack: {pack}}}
        trainer: {{max_epochs: {w.max_epochs}, early_stopping_patience: null, accelerator: auto}}
        """
    )


def study_results(storage: str, name: str, n_first: int) -> dict[str, Any]:
    """Epochs trained, trial counts and best validation losses read back from the storage."""
    import optuna

    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    # Epochs trained: one report per epoch (the objective, val_loss here, is reported each epoch).
    epochs = sum(len(t.intermediate_values) for t in finished)

    def best(ts: list) -> float | None:
        losses = [min(t.intermediate_values.values()) for t in ts if t.intermediate_values]
        return min(losses) if losses else None

    return {
        "n_trials": len(finished),
        "n_failed": sum(t.state.name == "FAIL" for t in trials),
        "n_pruned": sum(t.state.name == "PRUNED" for t in trials),
        "trial_epochs": epochs,
        "best_val_loss": best(finished),
        "best_val_loss_at_n": best([t for t in finished if t.number < n_first]),
    }


# --------------------------------------------------------------------------------------------
# The configurations (each runs in its own process: `--child NAME`).
# --------------------------------------------------------------------------------------------


def run_recipe(w: Workload, folder: Path) -> dict[str, Any]:
    """Optuna's documented Lightning recipe, written by hand as a user would."""
    import lightning.pytorch as pl
    import optuna
    import torch
    import torch.nn.functional as F
    from optuna_integration import MLflowCallback, PyTorchLightningPruningCallback
    from torch import nn

    from droptune.testing import TinyDataModule

    class Net(pl.LightningModule):
        def __init__(self, dropouts: list[float]) -> None:
            super().__init__()
            layers: list[nn.Module] = [nn.Dropout(dropouts[0])]
            width = w.in_features
            for size, p in zip(w.hidden, dropouts[1:]):
                layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(p)]
                width = size
            layers.append(nn.Linear(width, w.num_classes))
            self.net = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            x, y = batch
            logits = self(x)
            self.log("val_loss", F.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(-1) == y).float().mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    epochs: dict[int, list[float]] = {}

    class EpochRecorder(pl.Callback):  # the benchmark's bookkeeping, not part of the recipe
        def __init__(self, number: int) -> None:
            self.number = number

        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if not trainer.sanity_checking:
                epochs.setdefault(self.number, []).append(float(trainer.callback_metrics["val_loss"]))

    def objective(trial: optuna.Trial) -> float:
        dropouts = [trial.suggest_float("input_dropout", 0.0, 0.3)] + [
            trial.suggest_float(f"dropout_l{i}", 0.0, 0.7) for i in range(len(w.hidden))
        ]
        trainer = pl.Trainer(
            logger=False,
            enable_checkpointing=False,
            max_epochs=w.max_epochs,
            accelerator="auto",
            devices=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[
                EpochRecorder(trial.number),
                PyTorchLightningPruningCallback(trial, monitor="val_loss"),
            ],
        )
        data = TinyDataModule(
            n_train=w.n_train,
            n_val=w.n_val,
            in_features=w.in_features,
            num_classes=w.num_classes,
            batch_size=w.batch_size,
        )
        trainer.fit(Net(dropouts), datamodule=data)
        return trainer.callback_metrics["val_loss"].item()

    storage = f"sqlite:///{folder / 'optuna.db'}"
    study = optuna.create_study(
        study_name="recipe",
        storage=storage,
        direction="minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    mlflow_callback = MLflowCallback(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", metric_name="val_loss")
    start = time.perf_counter()
    study.optimize(objective, n_trials=w.n_trials, callbacks=[mlflow_callback])
    wall = time.perf_counter() - start
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    best = [min(epochs[t.number]) for t in finished if epochs.get(t.number)]
    return {
        "wall_s": wall,
        "n_trials": len(finished),
        "n_failed": sum(t.state.name == "FAIL" for t in study.get_trials()),
        "n_pruned": sum(t.state.name == "PRUNED" for t in finished),
        "trial_epochs": sum(len(epochs.get(t.number, [])) for t in finished),
        "best_val_loss": min(best) if best else None,
        "best_val_loss_at_n": min(best) if best else None,
        **peak_memory(),
    }


def run_droptune(w: Workload, folder: Path, *, pack: int | str = 1, profile: bool = False) -> dict[str, Any]:
    """``droptune tune`` in this process (unpacked or packed); the trial loop is timed.

    Creating the stores before and the recommendation report after are once per study,
    not per trial: they are left out of the time, as the recipe's study creation is.
    """
    from droptune.config import load_config
    from droptune.tuning import prepare_study, run_worker

    n_trials = max(w.n_trials, pack) if isinstance(pack, int) and pack > 1 else w.n_trials
    path = folder / "study.yaml"
    path.write_text(study_yaml(w, name="bench", n_trials=n_trials, pack=pack))
    os.chdir(folder)
    spec = load_config(path)
    lifecycle = prepare_study(spec)
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    run_worker(spec, study=lifecycle.study, tracker=lifecycle.tracker)
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - start
    lifecycle.finish()
    result = {"wall_s": wall, **study_results(spec.storage, spec.name, w.n_trials), **peak_memory()}
    if pack == "auto":  # what the memory probe chose, and why
        from droptune.record import PACK_AUTO_ATTR

        result["pack_auto"] = lifecycle.study.user_attrs.get(PACK_AUTO_ATTR)
    if profiler:
        result["profile"] = profile_summary(profiler, wall)
    return result


def run_workers(w: Workload, folder: Path, workers: int) -> dict[str, Any]:
    """K ``droptune worker`` processes on one device and one SQLite study.

    What ``droptune tune --workers K --workers-per-gpu K`` starts, launched here directly so
    that, as for the other configurations, preparing the study is not timed; the time
    includes each worker's start-up (imports, CUDA context), which is part of the cost.
    """
    from droptune.config import load_config
    from droptune.tuning import prepare_study

    path = folder / "study.yaml"
    path.write_text(study_yaml(w, name="bench", n_trials=w.n_trials))
    os.chdir(folder)
    spec = load_config(path)
    lifecycle = prepare_study(spec)
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "droptune",
                "worker",
                str(path),
                "--worker-index",
                str(i),
                "--quiet",
            ],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    errors = [p.communicate()[1] for p in processes]
    wall = time.perf_counter() - start
    failed = [(p.returncode, e) for p, e in zip(processes, errors) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"a worker failed ({failed[0][0]}):\n{failed[0][1][-3000:]}")
    lifecycle.finish()
    return {
        "wall_s": wall,
        **study_results(spec.storage, spec.name, w.n_trials),
        **peak_memory(children=True),
    }


def run_gpu_bound(w: Workload, folder: Path) -> dict[str, Any]:
    """One wide model, large batches: a bare Lightning fit against droptune unpacked (one trial)."""
    import lightning.pytorch as pl

    from droptune.config import load_config
    from droptune.models import MLP
    from droptune.tuning import prepare_study, run_worker

    data_args = {
        "n_train": w.wide_train,
        "n_val": w.wide_val,
        "in_features": w.wide_in,
        "batch_size": w.wide_batch,
    }
    model_args = {"in_features": w.wide_in, "hidden": list(w.wide_hidden), "num_classes": 10}
    data_cls = _synthetic_module()

    def bare() -> float:
        """Everything a user's own script does: build model, data and Trainer, then fit."""
        start = time.perf_counter()
        pl.seed_everything(0, verbose=False)
        trainer = pl.Trainer(
            max_epochs=w.wide_epochs,
            accelerator="auto",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        model, data = MLP(**model_args), data_cls(**data_args)
        trainer.fit(model, datamodule=data)
        return time.perf_counter() - start

    path = folder / "wide.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: wide
            model: {{class_path: droptune.models.MLP, init_args: {json.dumps(model_args)}}}
            data: {{class_path: throughput.SyntheticDataModule, init_args: {json.dumps(data_args)}}}
            search: {{n_trials: 1, pruner: none}}
            trainer: {{max_epochs: {w.wide_epochs}, early_stopping_patience: null, accelerator: auto,
                       gap_subset: {json.dumps(w.wide_gap_subset)}}}
            """
        )
    )
    os.chdir(folder)
    spec = load_config(path)
    study = prepare_study(spec).study
    bare()  # warm-up: CUDA context, kernels, allocator
    runs: dict[str, list[float]] = {"bare": [], "droptune": []}
    for _ in range(3):  # interleaved, best of three, so that drift hits both alike
        runs["bare"].append(bare())
        start = time.perf_counter()  # one more trial: the whole of `droptune tune`'s trial loop
        run_worker(
            replace(spec, search=replace(spec.search, n_trials=len(runs["droptune"]) + 1)),
            study=study,
        )
        runs["droptune"].append(time.perf_counter() - start)
    bare_s, droptune_s = min(runs["bare"]), min(runs["droptune"])
    return {
        "bare_lightning_s": round(bare_s, 3),
        "droptune_unpacked_s": round(droptune_s, 3),
        "bare_lightning_epochs_per_s": round(w.wide_epochs / bare_s, 3),
        "droptune_epochs_per_s": round(w.wide_epochs / droptune_s, 3),
        "droptune_vs_bare": round(bare_s / droptune_s, 3),
        "within_5_percent": droptune_s <= 1.05 * bare_s,
        "runs_s": {k: [round(v, 3) for v in vs] for k, vs in runs.items()},
    }


# Parts of a packed run's profile: label -> (file name end, function name).
PROFILE_PARTS = {
    "vectorised training (forward + backward + step)": ("_population.py", "train_epoch"),
    "  backward (autograd)": ("graph.py", "_engine_run_backward"),
    "  packed optimiser step": ("_optim.py", "step"),
    "  rate-tensor dropout masks": ("_dropout.py", "_drop"),
    "evaluation (val + train subset, eval mode)": ("_population.py", "evaluate"),
    "starting trials": ("_scheduler.py", "_start"),
    "  ask under the study lock": ("_scheduler.py", "next_trials"),
    "  seed, build model, suggest rates": ("executors/_packed.py", "start"),
    "recording epochs (queue reports and MLflow logs)": ("_recorder.py", "epoch"),
    "pruning decisions": ("executors/_packed.py", "_prune"),
    "finishing trials (queue attrs, tell, MLflow end)": ("_recorder.py", "close"),
    "waiting for queued writes (partly inside the rows above)": ("_bookkeeper.py", "drain"),
}


def profile_summary(profiler: cProfile.Profile, wall: float) -> dict[str, Any]:
    """Where a packed run spends its time: shares of wall time of the main parts."""
    stats = pstats.Stats(profiler)
    cumulative = {}
    for (filename, _, function), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, (file_end, name) in PROFILE_PARTS.items():
            if filename.endswith(file_end) and function == name:
                cumulative[label] = cumulative.get(label, 0.0) + cum
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    return {
        "shares_of_wall": {k: round(v / wall, 3) for k, v in cumulative.items()},
        "top_tottime": text.getvalue().splitlines()[-22:],
    }


def child(name: str, w: Workload, out: Path, profile: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cpu_start, wall_start = os.times(), time.perf_counter()
    with DeviceMonitor() as monitor:
        if name == "recipe":
            result = run_recipe(w, folder)
        elif name == "droptune":
            result = run_droptune(w, folder)
        elif name.startswith("workers_"):
            result = run_workers(w, folder, int(name.split("_")[1]))
        elif name.startswith("packed_"):
            size = name.split("_")[1]
            result = run_droptune(w, folder, pack=size if size == "auto" else int(size), profile=profile)
        elif name == "gpu_bound":
            result = run_gpu_bound(w, folder)
        else:
            raise SystemExit(f"unknown configuration {name!r}")
    cpu_end, wall = os.times(), time.perf_counter() - wall_start
    busy = sum(cpu_end[:4]) - sum(cpu_start[:4])
    result.update(monitor.summary())
    result["cpu_util_mean"] = round(100 * busy / wall / (os.cpu_count() or 1), 1)
    if "wall_s" in result:
        result["trial_epochs_per_s"] = round(result["trial_epochs"] / result["wall_s"], 3)
        result["trials_per_min"] = round(60 * result["n_trials"] / result["wall_s"], 3)
        result["wall_s"] = round(result["wall_s"], 2)
    out.write_text(json.dumps(result, indent=2))
    shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The driver: run every configuration in a fresh process, then write JSON and markdown.
# --------------------------------------------------------------------------------------------


def configurations(w: Workload) -> list[str]:
    return ["recipe", "droptune", f"workers_{w.workers}"] + [f"packed_{k}" for k in w.packs] + ["gpu_bound"]


def label(name: str) -> str:
    if name == "recipe":
        return "(a) Optuna + Lightning recipe"
    if name == "droptune":
        return "(b) droptune, unpacked"
    if name.startswith("workers_"):
        return f"(c) droptune, {name.split('_')[1]} workers on one device"
    return f"(d) droptune, packed K={name.split('_')[1]}"


def ratios(result: dict[str, Any], recipe: dict[str, Any]) -> dict[str, float | None]:
    def ratio(key: str) -> float | None:
        a, b = result.get(key), recipe.get(key)
        return round(a / b, 3) if a is not None and b else None

    return {
        k: ratio(k) for k in ("trial_epochs_per_s", "trials_per_min", "best_val_loss_at_n", "peak_memory_mib")
    }


def write_markdown(report: dict[str, Any], path: Path) -> None:
    header = (
        "| configuration | trial-epochs/s | × recipe | trials/min | trials (pruned) "
        "| best val loss (first n) | GPU util % | CPU util % | peak memory MiB |"
    )
    rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in report["configurations"].items():
        if "error" in r:
            rows.append(f"| {label(name)} | failed: {r['error'][:80]} | | | | | | | |")
            continue
        best = "-" if r.get("best_val_loss_at_n") is None else f"{r['best_val_loss_at_n']:.4f}"
        util = "n/a" if r.get("gpu_util_mean") is None else f"{r['gpu_util_mean']:.0f}"
        rows.append(
            f"| {label(name)} | {r['trial_epochs_per_s']:.2f} | {r['ratio_vs_recipe'] or 0:.2f} | "
            f"{r['trials_per_min']:.1f} | {r['n_trials']} ({r['n_pruned']}) | {best} | {util} | "
            f"{r['cpu_util_mean']:.0f} | {r['peak_memory_mib']:.0f} ({r['memory_kind']}) |"
        )
    gpu = report.get("gpu_bound", {})
    w = report["workload"]
    kind = "CPU" if report["device"].startswith("cpu") else "GPU"
    versions = report["versions"]
    lines = [
        f"# Throughput: droptune vs the Optuna + Lightning recipe ({kind})",
        "",
        f"Device: **{report['device']}**. Command: `{report['command']}`. Date: {report['date']}.",
        (
            f"torch {versions['torch']}, lightning {versions['lightning']}, "
            f"optuna {versions['optuna']}, mlflow {versions['mlflow']}."
        ),
        "",
        (
            f"Workload: MLP {w['in_features']}→{'→'.join(map(str, w['hidden']))}→{w['num_classes']} "
            f"with 3 dropouts, {w['n_train']} training rows, {w['n_val']} validation rows, "
            f"batch {w['batch_size']}, {w['n_trials']} trials × ≤ {w['max_epochs']} epochs, TPE + median "
            f"pruner (packed runs with K > {w['n_trials']} run K trials; 'best val loss' is over the "
            f"first {w['n_trials']} trials in every row)."
        ),
        "",
        *rows,
        "",
    ]
    if gpu and "error" not in gpu:
        verdict = "within" if gpu["within_5_percent"] else "NOT within"
        lines += [
            (
                f"GPU-bound check (MLP {w['wide_in']}→{'→'.join(map(str, w['wide_hidden']))}→10, "
                f"{w['wide_train']} rows, batch {w['wide_batch']}, {w['wide_epochs']} epochs, one trial, "
                f"best of {len(gpu['runs_s']['bare'])}): bare Lightning "
                f"{gpu['bare_lightning_epochs_per_s']:.3f} epochs/s, droptune unpacked "
                f"{gpu['droptune_epochs_per_s']:.3f} epochs/s → droptune at "
                f"{100 * gpu['droptune_vs_bare']:.1f} % of bare Lightning ({verdict} 5 %)."
            ),
            "",
        ]
    profile = report.get("profile")
    if profile:
        found = profile["shares_of_wall"]
        shares = [(name, found[name]) for name in PROFILE_PARTS if name in found]
        lines += [
            (
                f"Where the time of `{profile['configuration']}` goes (cProfile of the main thread, "
                "share of wall time; indented rows are part of the row above; storage and MLflow "
                "writes run on a background thread and show as waiting):"
            ),
            "",
            "| part | share |",
            "|---|---:|",
            *(f"| {name.replace('  ', '&nbsp;&nbsp;')} | {100 * share:.0f} % |" for name, share in shares),
            "",
        ]
    lines += [f"- {note}" for note in report.get("notes", [])]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes: minutes on a CPU")
    parser.add_argument(
        "--configs", help="comma-separated subset: recipe,droptune,workers_K,packed_K,gpu_bound"
    )
    parser.add_argument("--n-trials", type=int, help="trials per configuration")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial at most")
    parser.add_argument("--packs", help="comma-separated population sizes, e.g. 8,32,128")
    parser.add_argument("--workers", type=int, help="worker processes of configuration (c)")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest packed run")
    parser.add_argument(
        "--gap-subset",
        type=lambda text: float(text) if "." in text else int(text),
        help="trainer.gap_subset of the gpu_bound check's droptune side (rows, or a fraction with a '.')",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of throughput.json/.md")
    parser.add_argument("--note", action="append", default=[], help="a line added to the report")
    parser.add_argument("--render", type=Path, help="only rewrite the markdown of this results JSON")
    parser.add_argument(
        "--bookkeeping", action="store_true", help="only the compute-free packed study (see benchmarks/bookkeeping.py)"
    )
    parser.add_argument(
        "--tree", action="append", default=[], metavar="LABEL=DIR",
        help="with --bookkeeping: a source tree to measure (repeatable; default: this one, as 'current')",
    )
    parser.add_argument(
        "--storage", default="sqlite", help="with --bookkeeping: Optuna storages to compare (sqlite, journal; comma-separated)"
    )
    parser.add_argument(
        "--tracking", default="mlflow", help="with --bookkeeping: trackers to compare (mlflow, none; comma-separated)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    w = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {}
    if args.n_trials:
        overrides["n_trials"] = args.n_trials
    if args.max_epochs:
        overrides["max_epochs"] = args.max_epochs
    if args.packs:
        overrides["packs"] = tuple(int(k) for k in args.packs.split(","))
    if args.workers:
        overrides["workers"] = args.workers
    if args.gap_subset is not None:
        overrides["wide_gap_subset"] = args.gap_subset
    w = replace(w, **overrides)

    if args.bookkeeping:
        import bookkeeping

        trees = [(t.partition("=")[0], Path(t.partition("=")[2])) for t in args.tree] or [("current", ROOT)]
        sizes = {k: v for k, v in (("n_trials", args.n_trials), ("max_epochs", args.max_epochs)) if v}
        if args.packs:
            sizes["pack"] = int(args.packs.split(",")[0])
        variants = [(s, t) for s in args.storage.split(",") for t in args.tracking.split(",")]
        return bookkeeping.main(trees, args.out, bookkeeping.Study(**sizes), notes=args.note, variants=variants)
    if args.child:
        child(args.child, w, args.child_out, args.profile)
        return 0
    if args.render:
        report = json.loads(args.render.read_text())
        report["notes"] = report.get("notes", []) + args.note
        args.render.write_text(json.dumps(report, indent=2) + "\n")
        write_markdown(report, args.render.with_suffix(".md"))
        return 0

    names = args.configs.split(",") if args.configs else configurations(w)
    profiled = f"packed_{max(w.packs)}" if args.profile else None
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            result_path = Path(handle.name)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--child-out",
            str(result_path),
        ]
        command += ["--quick"] if args.quick else []
        for flag, value in (
            ("--n-trials", args.n_trials),
            ("--max-epochs", args.max_epochs),
            ("--packs", args.packs),
            ("--workers", args.workers),
            ("--gap-subset", args.gap_subset),
        ):
            if value:
                command += [flag, str(value)]
        command += ["--profile"] if name == profiled else []
        print(f"[throughput] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not result_path.read_text().strip():
            results[name] = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
            print(done.stderr[-4000:], file=sys.stderr)
        else:
            results[name] = json.loads(result_path.read_text())
        result_path.unlink(missing_ok=True)
        print(f"[throughput] {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    import lightning
    import mlflow
    import optuna
    import torch

    gpu_bound = results.pop("gpu_bound", None)
    recipe = results.get("recipe", {})
    for result in results.values():
        if "error" not in result:
            result["ratios_vs_recipe"] = ratios(result, recipe)
            result["ratio_vs_recipe"] = result["ratios_vs_recipe"]["trial_epochs_per_s"]
    profile = next((r.pop("profile") for r in results.values() if "profile" in r), None)
    command = "python benchmarks/throughput.py" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
    )
    report = {
        "device": device_name(),
        "command": command.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "quick": args.quick,
        "workload": asdict(w),
        "versions": {
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "optuna": optuna.__version__,
            "mlflow": mlflow.__version__,
        },
        "configurations": results,
        "gpu_bound": gpu_bound,
        "profile": {"configuration": profiled, **profile} if profile else None,
        "notes": args.note,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, args.out / "throughput.md")
    print((args.out / "throughput.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
