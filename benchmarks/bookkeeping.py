"""The compute-free study: how fast droptune's bookkeeping (Optuna + MLflow writes) lets trials go.

A packed study whose model costs almost nothing (an MLP with one hidden layer of 8 units on 256
MNIST-1D rows), 256 trials of 20 epochs each, populations of 128, no pruner: the time it takes
is the time of the asks, reports, user attributes, tells and MLflow runs. The same study runs
once per source tree given (e.g. the code before and after a change, unpacked with
``git archive REV | tar -x -C DIR``), each as ``python -m droptune tune`` in a fresh folder,
one after the other on the same machine.

Reported per tree: trial-epochs trained, the study's span (first trial started to last trial
finished, from Optuna's timestamps), trial-epochs per second over that span, the same until
the last trial's MLflow run was closed (MLflow's own end times: a packed study's runs are
written by another process and may land after their trials end), and the wall time of the
whole command (imports, checks and the closing report included).

Usage::

    python benchmarks/throughput.py --bookkeeping [--tree before=DIR] [--tree after=.]
        [--storage sqlite,journal] [--tracking mlflow,none]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

STORAGE = "sqlite:///studies/droptune.db"
JOURNAL = "journal:///studies/droptune.journal"


@dataclass(frozen=True)
class Study:
    """The compute-free study."""

    n_trials: int = 256
    max_epochs: int = 20
    pack: int = 128
    rows: int = 256
    hidden: int = 8
    sampler: str = "tpe"
    storage: str = "sqlite"  # or journal: Optuna's journal file (see droptune.stores._create.journal_storage)
    tracking: str = "mlflow"  # or none: no MLflow (what the trials' child runs cost)

    def yaml(self, name: str) -> str:
        store = {"sqlite": STORAGE, "journal": JOURNAL}[self.storage]
        tracking = "" if self.tracking == "mlflow" else "tracking_uri: none\n"
        return f"storage: {store}\n" + tracking + textwrap.dedent(
            f"""
            name: {name}
            model: {{class_path: droptune.models.MLP, init_args: {{hidden: [{self.hidden}]}}}}
            data: {{class_path: droptune.data.Mnist1dDataModule, init_args: {{train_size: {self.rows}}}}}
            search: {{n_trials: {self.n_trials}, pack: {self.pack}, pruner: none, sampler: {self.sampler}}}
            trainer: {{max_epochs: {self.max_epochs}, early_stopping_patience: null, accelerator: cpu}}
            """
        )


def run_tree(tree: Path, study: Study, label: str) -> dict[str, Any]:
    """Run the study with the droptune of ``tree`` in a fresh folder; return its figures."""
    import optuna

    with tempfile.TemporaryDirectory(prefix=f"droptune-bookkeeping-{label}-") as tmp:
        folder = Path(tmp)
        (folder / "study.yaml").write_text(study.yaml("bookkeeping"))
        env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "droptune", "tune", "study.yaml"],
            cwd=folder, env=env, capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - start
        if done.returncode != 0:
            return {"tree": label, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if study.storage == "journal":
            from optuna.storages.journal import JournalFileBackend

            storage: Any = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "studies" / "droptune.journal")))
        else:
            storage = f"sqlite:///{folder / 'studies' / 'droptune.db'}"
        trials = optuna.load_study(study_name="bookkeeping", storage=storage).get_trials(deepcopy=False)
        finished = [t for t in trials if t.datetime_complete is not None and t.datetime_start is not None]
        span = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
        epochs = sum(len(t.intermediate_values) for t in finished)
        # MLflow's child runs may land after their trials end (a large packed study writes them
        # from a separate process): also measure until the last of them was closed, or until the
        # study's end where that is later (written in process, a run closes just before its
        # trial's end is told to Optuna).
        tracked = None
        if study.tracking == "mlflow":
            written = _mlflow_span(folder, min(t.datetime_start for t in finished))
            tracked = None if written is None else max(span, written)
        return {
            "tree": label,
            "trials": len(finished),
            "trial_epochs": epochs,
            "study_seconds": round(span, 2),
            "trial_epochs_per_s": round(epochs / span, 1),
            "mlflow_written_seconds": None if tracked is None else round(tracked, 2),
            "trial_epochs_per_s_mlflow_written": None if tracked is None else round(epochs / tracked, 1),
            "wall_seconds": round(wall, 1),
            "trial_epochs_per_wall_s": round(epochs / wall, 1),
        }


def _mlflow_span(folder: Path, first_start: Any) -> float | None:
    """Seconds from the first trial's start until the last trial's MLflow run was closed."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bookkeeping")
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`droptune.role` = 'trial'",
                              max_results=50_000)
    ends = [r.info.end_time for r in runs if r.info.end_time]
    if not ends:
        return None
    return max(ends) / 1000 - first_start.timestamp()


def main(
    trees: list[tuple[str, Path]],
    out: Path,
    study: Study | None = None,
    notes: list[str] | None = None,
    *,
    variants: list[tuple[str, str]] | None = None,
) -> int:
    """Run the study for each ``(label, tree)`` and each ``(storage, tracking)`` variant (default:
    the study's own); write ``out/throughput_bookkeeping.{json,md}``."""
    study = study or Study()
    variants = variants or [(study.storage, study.tracking)]
    results = []
    for label, tree in trees:
        for storage, tracking in variants:
            run = replace(study, storage=storage, tracking=tracking)
            name = label if len(variants) == 1 else f"{label} ({storage}, tracking {tracking})"
            print(f"[bookkeeping] {name}: {tree} ...", file=sys.stderr, flush=True)
            results.append(run_tree(tree, run, name))
            print(f"[bookkeeping] {name}: {results[-1]}", file=sys.stderr, flush=True)
    report = {
        "what": "compute-free packed study (bookkeeping bound)",
        "study": study.__dict__,
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
        "notes": notes or [],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput_bookkeeping.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Compute-free study: bookkeeping throughput",
        "",
        f"MLP with {study.hidden} hidden units, {study.rows} MNIST-1D rows, {study.n_trials} trials x "
        f"{study.max_epochs} epochs, pack {study.pack}, pruner none, sampler {study.sampler}; "
        f"storage {'/'.join(sorted({v[0] for v in variants}))}, tracking {'/'.join(sorted({v[1] for v in variants}))}; "
        "`python -m droptune tune`, one tree after the other on the same machine.",
        "",
        "| tree | trial-epochs | study span (s) | trial-epochs/s (span) | until MLflow written (s) | "
        "trial-epochs/s (until MLflow written) | wall (s) | trial-epochs/s (wall) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['tree']} | error: {r['error']} | | | | |")
        else:
            written = r.get("mlflow_written_seconds")
            lines.append(
                f"| {r['tree']} | {r['trial_epochs']} | {r['study_seconds']} | {r['trial_epochs_per_s']} | "
                f"{'–' if written is None else written} | "
                f"{'–' if written is None else r['trial_epochs_per_s_mlflow_written']} | "
                f"{r['wall_seconds']} | {r['trial_epochs_per_wall_s']} |"
            )
    lines += [""] + [f"- {n}" for n in notes or []]
    (out / "throughput_bookkeeping.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
