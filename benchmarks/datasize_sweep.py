"""Data-size sweep: does droptune recommend less dropout as the training set grows?

The MLP and the 1-D CNN on MNIST-1D are tuned with droptune's default search at several
training sizes (250 to 4000 rows; the validation and test splits stay the same), and the
recommended rate per layer type (median over the top 20 % of complete trials, at least 3,
pooled over seeds, as ``droptune recommend`` computes it) is plotted against size.
Srivastava et al. (2014) and Gal, Hron & Kendall (2017, Concrete Dropout) find that the
best rates fall as data grows.

A smaller training set has fewer batches per epoch, so the epoch budget and the early-
stopping patience are scaled by ``4000 / size`` (capped): every size gets about the same
number of optimiser steps, and small sets are not under-trained (which would favour low
rates and bias the sweep).

Usage (from the repository root)::

    .venv/bin/python benchmarks/datasize_sweep.py --help
    .venv/bin/python benchmarks/datasize_sweep.py             # full size (GPU machine)
    .venv/bin/python benchmarks/datasize_sweep.py --seeds 1 --trials 16 --max-epochs 20 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_quality as sq  # noqa: E402

SIZES = (250, 500, 1000, 2000, 4000)
MODELS = ("mnist1d-mlp", "mnist1d-cnn")
REFERENCE_SIZE = 4000
MAX_EPOCHS_CAP = 400
TOP = 0.2
MIN_TRIALS = 3


def pooled_recommendation(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """droptune's statistic, pooled over seeds: per study keep the top 20 % (>= 3) complete trials."""
    pool: dict[str, list[float]] = {}
    best: dict[str, list[float]] = {}
    for run in runs:
        done = sorted((t for t in run["trials"] if t["state"] == "complete"), key=lambda t: t["value"])
        if len(done) < MIN_TRIALS:
            continue
        kept = done[: max(MIN_TRIALS, math.ceil(TOP * len(done)))]
        types = run["layer_types"]
        for i, trial in enumerate(kept):
            by_type: dict[str, list[float]] = {}
            for site, rate in trial["rates"].items():
                by_type.setdefault(types[site], []).append(rate)
            for name, rates in by_type.items():
                pool.setdefault(name, []).append(statistics.fmean(rates))
                if i == 0:
                    best.setdefault(name, []).append(statistics.fmean(rates))
    out = {}
    for name, rates in pool.items():
        q1, q2, q3 = np.percentile(rates, [25, 50, 75])
        out[name] = {"recommended": float(q2), "low": float(q1), "high": float(q3),
                     "best": float(np.median(best[name])), "n_trials": len(rates)}
    return out


def spearman(x: list[float], y: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    p.add_argument("--method", default="droptune", choices=list(sq._methods()), help="search (default droptune)")
    p.add_argument("--seeds", type=int, default=3, help="studies per model and size (default 3)")
    p.add_argument("--trials", type=int, default=40, help="trials per study (default 40)")
    p.add_argument("--max-epochs", type=int, default=None,
                   help="epoch budget at 4000 rows (default: the task's); scaled by 4000/size, capped at 400")
    p.add_argument("--trainer", choices=list(sq.TRAINERS), default="lightning")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", type=Path, default=sq.RESULTS)
    p.add_argument("--prefix", default="datasize")
    p.add_argument("--reuse", nargs="*", type=Path, default=None, metavar="LOG",
                   help="re-summarise the studies logged in these .jsonl files (default PREFIX.jsonl) "
                   "instead of running them")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = []
    for name in args.models:
        base = sq.TASKS[name]
        epochs = args.max_epochs or base.max_epochs
        for size in args.sizes:
            scale = max(1.0, REFERENCE_SIZE / size)
            for seed in range(args.seeds):
                jobs.append(sq.Job(base.with_train_size(size), args.method, seed, args.trials,
                                   min(MAX_EPOCHS_CAP, round(epochs * scale)), round(base.patience * scale),
                                   args.trainer, retrain=True))
    log_path = args.out / f"{args.prefix}.jsonl"
    command = "python benchmarks/datasize_sweep.py " + " ".join(sys.argv[1:] if argv is None else argv)
    wall: float | None = None
    if args.reuse is not None:
        logs = args.reuse or [log_path]
        results = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        results = [r for r in results if r["task"] in args.models and r["train_size"] in args.sizes]
        if args.reuse:
            log_path.write_text("".join(json.dumps(r) + "\n" for r in results))
        old = args.out / f"{args.prefix}.json"
        if not args.reuse and old.exists():
            command, wall = json.loads(old.read_text())["command"], json.loads(old.read_text())["wall_seconds"]
    else:
        if log_path.exists():
            log_path.unlink()
        started = time.monotonic()
        results = sq.run_jobs(jobs, args.jobs, log_path)
        wall = time.monotonic() - started

    table: dict[str, dict[int, Any]] = {}
    for name in args.models:
        for size in args.sizes:
            runs = [r for r in results if r["task"] == name and r["train_size"] == size]
            accs = [r["test"]["accuracy"] for r in runs if "test" in r]
            table.setdefault(name, {})[size] = {
                "types": pooled_recommendation(runs),
                "per_seed": [r.get("recommendation") for r in runs],
                "best_value_mean": statistics.fmean(r["best"]["value"] for r in runs if "best" in r),
                "test_accuracy_mean": statistics.fmean(accs) if accs else None,
                "max_epochs": next(j.max_epochs for j in jobs if j.task.name == name and j.task.data_args["train_size"] == size),
            }
    trend: dict[str, dict[str, Any]] = {}
    for name, rows in table.items():
        types = sorted({t for row in rows.values() for t in row["types"]})
        for t in types:
            sizes = [s for s in args.sizes if t in rows[s]["types"]]
            rec = [rows[s]["types"][t]["recommended"] for s in sizes]
            rho = spearman(sizes, rec)
            trend.setdefault(name, {})[t] = {
                "sizes": sizes, "recommended": rec, "spearman": rho,
                "falls": bool(rho is not None and rho < 0 and rec[0] > rec[-1]),
            }
    report = {"command": command, "args": {k: sq.portable(v) for k, v in vars(args).items()},
              "wall_seconds": None if wall is None else round(wall, 1),
              "study_seconds": sum(r["seconds"] for r in results), "sweep": {n: {str(s): v for s, v in r.items()} for n, r in table.items()},
              "trend": trend}
    (args.out / f"{args.prefix}.json").write_text(json.dumps(report, indent=1))

    took = (f"{wall / 60:.1f} min wall" if wall is not None
            else f"re-summarised from logged studies that took {sum(r['seconds'] for r in results) / 60:.1f} min in all")
    lines = [f"# Data-size sweep\n\nCommand: `{command}` ({took})\n",
             "Recommended rate per layer type (median [IQR] over the top 20 % of trials, pooled over seeds), "
             "best validation loss and test accuracy of the retrained best configuration.\n",
             "| model | train size | max epochs | " + " | ".join(
                 f"{t}" for t in ("input", "dense", "spatial")) + " | best val loss | test acc |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rows in table.items():
        for size, row in rows.items():
            cells = []
            for t in ("input", "dense", "spatial"):
                r = row["types"].get(t)
                cells.append("–" if r is None else f"{r['recommended']:.2f} [{r['low']:.2f}, {r['high']:.2f}]")
            acc = row["test_accuracy_mean"]
            lines.append(f"| {name} | {size} | {row['max_epochs']} | {' | '.join(cells)} | "
                         f"{row['best_value_mean']:.4f} | {'–' if acc is None else f'{acc:.4f}'} |")
    lines += ["", "| model | layer type | Spearman ρ(size, rate) | falls with data |", "|---|---|---|---|"]
    for name, types in trend.items():
        for t, tr in types.items():
            rho = "–" if tr["spearman"] is None else f"{tr['spearman']:+.2f}"
            lines.append(f"| {name} | {t} | {rho} | {'yes' if tr['falls'] else 'no'} |")
    (args.out / f"{args.prefix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(table, trend, args.out / f"{args.prefix}.png")
    return 0


def plot(table: dict[str, dict[int, Any]], trend: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from droptune.space import PRIORS

    colors = {"input": "tab:green", "dense": "tab:red", "spatial": "tab:blue"}
    fig, axes = plt.subplots(1, len(table), figsize=(6 * len(table), 4.2), squeeze=False)
    for ax, (name, rows) in zip(axes.flat, table.items()):
        for t in trend[name]:
            sizes = [s for s in rows if t in rows[s]["types"]]
            rec = np.array([rows[s]["types"][t]["recommended"] for s in sizes])
            low = np.array([rows[s]["types"][t]["low"] for s in sizes])
            high = np.array([rows[s]["types"][t]["high"] for s in sizes])
            color = colors.get(t)
            ax.errorbar(sizes, rec, yerr=[rec - low, high - rec], marker="o", capsize=3, color=color,
                        label=f"{t} (ρ={trend[name][t]['spearman']:+.2f})" if trend[name][t]["spearman"] is not None
                        else t)
            ax.axhline(PRIORS[t], color=color, ls=":", lw=1)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(rows))
        ax.set_xticklabels([str(s) for s in rows])
        ax.set_xlabel("training rows")
        ax.set_ylabel("recommended dropout rate")
        ax.set_title(f"{name}: recommended rate vs data (dotted: textbook prior)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
