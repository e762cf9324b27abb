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

With ``--confirm`` each study, after its search, gets the engine's confirmation
(:mod:`droptune.tuning._confirm`): its top K complete trials (ranked as
``droptune.recommend.rank_trials`` ranks them) are retrained S times each with fresh seeds
(no pruning, the search's epoch budget and patience, the same trainer as the search; retrain
i of every configuration with seed ``study seed + SEED_OFFSET + i``, seed-major, as the
engine's PlanSampler hands them out)
and ranked by their mean. The confirmed recommendation of a study (one seed, not pooled)
is, per layer type, the rate of the best finalist by mean: what ``droptune.recommend``
reports as ``best`` (``best_trial``) for a confirmed study. The engine's own reader is
asked too (the finalists written with its ``record_finalists`` on a copy of the search)
and must agree. The sweep trains in its own in-memory ask/tell loop, not through the
engine's scheduler, so ``confirm()`` itself cannot run here: the retrains go through the
sweep's trainer, as the search's trials do.

Usage (from the repository root)::

    .venv/bin/python benchmarks/datasize_sweep.py --help
    .venv/bin/python benchmarks/datasize_sweep.py             # full size (GPU machine)
    .venv/bin/python benchmarks/datasize_sweep.py --seeds 1 --trials 16 --max-epochs 20 --jobs 2
    .venv/bin/python benchmarks/datasize_sweep.py --confirm 3 5 ...   # top 3 retrained 5 times each
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_quality as sq  # noqa: E402

from droptune.tuning._confirm import DEFAULT_SEEDS, DEFAULT_TOP, SEED_OFFSET  # noqa: E402

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


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of ``x`` and ``y``, or None when ``y`` is constant."""
    from scipy.stats import spearmanr

    if len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


# ----------------------------------------------------------------------------- confirmation


def rank_complete(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A logged study's complete trials, best first (value, then trial number).

    The order of ``droptune.recommend.rank_trials`` for a study without constraints.

    Args:
        trials: The ``trials`` of one study's result (``state``, ``value``, ``number``).

    Returns:
        The complete trials, lowest value first.
    """
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None and math.isfinite(t["value"])]
    return sorted(done, key=lambda t: (t["value"], t["number"]))


def confirm_schedule(n_configs: int, seeds: int, base_seed: int) -> list[tuple[int, int, int]]:
    """``(configuration index, retrain index, seed)`` per retrain, in the engine's order.

    Seed-major, as ``PlanSampler`` hands out pairs; retrain ``i`` of every configuration
    trains with ``base_seed + i`` (paired, as :func:`droptune.record.trial_seed` gives it).

    Example:
        >>> confirm_schedule(2, 2, 100)
        [(0, 0, 100), (1, 0, 100), (0, 1, 101), (1, 1, 101)]
    """
    return [(k % n_configs, k // n_configs, base_seed + k // n_configs) for k in range(n_configs * seeds)]


def summarise_finalists(
    values: Mapping[int, Sequence[float]], search_values: Mapping[int, float]
) -> list[dict[str, Any]]:
    """Mean ± sd per retrained configuration, best mean first (ties: lower trial number).

    Mirrors ``droptune.tuning._confirm.summarise`` for a minimised objective; non-finite
    retrains (diverged) are left out, and a configuration with none is dropped.

    Args:
        values: Retrain values per search trial number.
        search_values: The search trial's own (single-seed) value per trial number.

    Returns:
        ``[{"trial", "n", "value_mean", "value_sd", "search_value", "values"}, ...]``.
    """
    out = []
    for trial, vals in values.items():
        finite = [float(v) for v in vals if math.isfinite(v)]
        if not finite:
            continue
        out.append({"trial": trial, "n": len(finite), "value_mean": statistics.fmean(finite),
                    "value_sd": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                    "search_value": search_values.get(trial), "values": finite})
    return sorted(out, key=lambda f: (f["value_mean"], f["trial"]))


def confirmed_recommendation(
    finalists: Sequence[Mapping[str, Any]], rates: Mapping[int, Mapping[str, float]], layer_types: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Per layer type, the rate of the best finalist by confirmed mean.

    Args:
        finalists: As :func:`summarise_finalists` returns them (best mean first).
        rates: ``{site: rate}`` per search trial number.
        layer_types: ``{site: layer type}`` of the study.

    Returns:
        ``{layer type: {"rate", "trial", "n", "value_mean", "value_sd", "search_value"}}``
        (the mean rate of the type's sites); empty when no finalist has a retrain.
    """
    from droptune.record import rates_by_type

    if not finalists:
        return {}
    best = finalists[0]
    keep = ("trial", "n", "value_mean", "value_sd", "search_value")
    return {t: {"rate": r, **{k: best[k] for k in keep}}
            for t, r in rates_by_type(rates[best["trial"]], layer_types).items()}


def engine_best(result: Mapping[str, Any], finalists: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """What ``droptune.recommend`` keeps as the best trial of this study once confirmed.

    The logged trials are replayed into an in-memory Optuna study, the finalists are
    written with the engine's ``record_finalists``, and ``droptune.recommend.best_trial``
    picks the trial whose rates per layer type are returned.
    """
    import optuna

    from droptune.record import RATES_ATTR, TYPE_RATES_ATTR, TYPES_ATTR, best_trial, rates_by_type, type_rates
    from droptune.tuning._confirm import Finalist, record_finalists

    study = optuna.create_study(direction="minimize")
    logged = {t["number"]: t for t in result["trials"]}
    for number in range(max(logged, default=-1) + 1):  # every number, so that trial numbers match the log's
        t = logged.get(number)
        if t is None or t["state"] != "complete":
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
            continue
        attrs = {RATES_ATTR: t["rates"], TYPES_ATTR: result["layer_types"],
                 TYPE_RATES_ATTR: rates_by_type(t["rates"], result["layer_types"])}
        study.add_trial(optuna.trial.create_trial(value=t["value"], user_attrs=attrs))
    assert all(study.trials[n].value == logged[n]["value"] for n in logged if logged[n]["state"] == "complete")
    record_finalists(study, [Finalist(trial=f["trial"], n=f["n"], value_mean=f["value_mean"], value_sd=f["value_sd"],
                                      gap_mean=math.nan, gap_sd=math.nan, search_value=f["search_value"])
                             for f in finalists], study="replay.confirm", seeds=max(f["n"] for f in finalists))
    return type_rates(best_trial(study))


def confirm_study(job: sq.Job, result: Mapping[str, Any], *, top: int, seeds: int) -> dict[str, Any]:
    """Retrain a searched study's ``top`` best configurations ``seeds`` times each (no pruning).

    Args:
        job: The study's job (task, trainer, epoch budget, patience, seed).
        result: Its logged search (``sq.run_job``'s result).
        top: Configurations to retrain, best first.
        seeds: Retrains of each.

    Returns:
        ``{"top", "seeds", "base_seed", "finalists", "recommendation", "engine_best", "seconds"}``.
    """
    import torch

    torch.set_num_threads(1)
    sq._quiet()
    started = time.monotonic()
    plan = rank_complete(result["trials"])[:top]
    data = sq.load_data(job.task, job.trainer)
    fit = sq.TRAINERS[job.trainer]
    base = job.seed + SEED_OFFSET  # the engine's confirm_seed for a small study seed
    values: dict[int, list[float]] = {t["number"]: [] for t in plan}
    for index, _, seed in confirm_schedule(len(plan), seeds, base):
        trial = plan[index]
        out, _ = fit(job.task, data, trial["rates"], seed=seed, max_epochs=job.max_epochs, patience=job.patience,
                     trial=None)
        values[trial["number"]].append(out.value)
    finalists = summarise_finalists(values, {t["number"]: t["value"] for t in plan})
    rates = {t["number"]: t["rates"] for t in plan}
    return {"top": top, "seeds": seeds, "base_seed": base, "finalists": finalists,
            "recommendation": confirmed_recommendation(finalists, rates, result["layer_types"]),
            "engine_best": engine_best(result, finalists) if finalists else {},
            "seconds": round(time.monotonic() - started, 2)}


def _confirm_one(args: tuple[sq.Job, dict[str, Any], int, int]) -> dict[str, Any]:
    job, result, top, seeds = args
    return {**result, "confirm": confirm_study(job, result, top=top, seeds=seeds)}


def confirm_all(results: list[dict[str, Any]], jobs: Sequence[sq.Job], *, top: int, seeds: int, n_procs: int,
                log_path: Path) -> list[dict[str, Any]]:
    """Confirm every logged study that has no confirmation yet; rewrite the log after each one.

    Raises:
        SystemExit: If a study's job is not among ``jobs`` (a re-summary with other sizes or seeds).
    """
    import multiprocessing

    by_key = {(j.task.name, j.task.data_args["train_size"], j.seed): j for j in jobs}
    todo = [i for i, r in enumerate(results) if "confirm" not in r and "best" in r]
    missing = [i for i in todo if (results[i]["task"], results[i]["train_size"], results[i]["seed"]) not in by_key]
    if missing:
        raise SystemExit(f"no job for the logged studies {[results[i]['seed'] for i in missing]}: give the same "
                         "--models, --sizes, --seeds, --trainer and --max-epochs as the search")
    work = [(by_key[(results[i]["task"], results[i]["train_size"], results[i]["seed"])], results[i], top, seeds)
            for i in todo]
    started = time.monotonic()

    def note(i: int, res: dict[str, Any]) -> None:
        results[i] = res
        log_path.write_text("".join(json.dumps(r) + "\n" for r in results))
        best = res["confirm"]["finalists"][0] if res["confirm"]["finalists"] else {}
        print(f"[{time.monotonic() - started:7.0f}s] confirmed {res['task']} (n={res['train_size']}) seed "
              f"{res['seed']}: trial {best.get('trial')} {best.get('value_mean', math.nan):.4f} ± "
              f"{best.get('value_sd', math.nan):.4f} in {res['confirm']['seconds']}s", file=sys.stderr, flush=True)

    if n_procs <= 1:
        for i, w in zip(todo, work):
            note(i, _confirm_one(w))
    else:
        with multiprocessing.get_context("spawn").Pool(n_procs) as pool:
            for i, res in zip(todo, pool.imap(_confirm_one, work)):
                note(i, res)
    return results


def per_seed_trend(results: Sequence[Mapping[str, Any]], sizes: Sequence[int],
                   rate: Any) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """Spearman ρ(train size, rate) per model, layer type and seed (one study per size).

    Args:
        results: Logged studies (``task``, ``train_size``, ``seed``).
        sizes: The sweep's sizes, in order.
        rate: ``rate(result) -> {layer type: rate}`` (empty when the study has none).

    Returns:
        ``{model: {layer type: {seed: {"sizes", "rates", "spearman", "falls"}}}}``; ``falls``
        means ρ < 0 and the smallest size's rate above the largest's.
    """
    rows: dict[tuple[str, str, int], dict[int, float]] = {}
    for r in results:
        if r["train_size"] not in sizes:
            continue
        for t, v in rate(r).items():
            rows.setdefault((r["task"], t, r["seed"]), {})[r["train_size"]] = v
    out: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for (model, t, seed), by_size in sorted(rows.items()):
        xs = [s for s in sizes if s in by_size]
        ys = [by_size[s] for s in xs]
        rho = spearman(xs, ys) if len(xs) > 1 else None
        out.setdefault(model, {}).setdefault(t, {})[seed] = {
            "sizes": xs, "rates": ys, "spearman": rho, "falls": bool(rho is not None and rho < 0 and ys[0] > ys[-1])}
    return out


def confirmed_rates(result: Mapping[str, Any]) -> dict[str, float]:
    """A study's confirmed rate per layer type (empty when it was not confirmed)."""
    return {t: v["rate"] for t, v in result.get("confirm", {}).get("recommendation", {}).items()}


def median_rates(result: Mapping[str, Any]) -> dict[str, float]:
    """A study's own top-20 % median per layer type (``droptune recommend``'s ``recommended``)."""
    return {t: v["recommended"] for t, v in (result.get("recommendation") or {}).items()}


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
    p.add_argument("--confirm", nargs="*", type=int, default=None, metavar="N",
                   help=f"after each search, retrain its top TOP trials SEEDS times each with fresh seeds and "
                   f"report the confirmed rates per study: --confirm [TOP [SEEDS]] (the engine's defaults "
                   f"{DEFAULT_TOP} {DEFAULT_SEEDS}); with --reuse, the logged studies not yet confirmed are confirmed")
    args = p.parse_args(argv)
    if args.confirm is not None:
        if len(args.confirm) > 2 or any(v < 1 for v in args.confirm) or args.confirm[1:2] == [1]:
            p.error(f"--confirm takes TOP >= 1 and SEEDS >= 2 (a spread needs two retrains); got {args.confirm}")
        args.confirm = (args.confirm + [DEFAULT_TOP, DEFAULT_SEEDS][len(args.confirm):])
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
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < (os.cpu_count() or 1):  # pinned: say so, since it bounds the wall time
        command = f"taskset -c {','.join(map(str, cores))} {command}"
    wall: float | None = None
    load_before = os.getloadavg()
    measured: dict[str, Any] | None = None
    started = time.monotonic()
    if args.reuse is not None:
        logs = args.reuse or [log_path]
        results = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
        results = [r for r in results if r["task"] in args.models and r["train_size"] in args.sizes]
        if args.reuse:
            log_path.write_text("".join(json.dumps(r) + "\n" for r in results))
        old = args.out / f"{args.prefix}.json"
        if not args.reuse and old.exists():
            logged = json.loads(old.read_text())
            command, wall = logged["command"], logged["wall_seconds"]
            measured = logged.get("load_average")  # the run's, not this re-summary's
    else:
        if log_path.exists():
            log_path.unlink()
        results = sq.run_jobs(jobs, args.jobs, log_path)
        wall = time.monotonic() - started
    confirm_wall = None
    fresh_confirm = args.confirm is not None and any("confirm" not in r for r in results)
    if args.confirm is not None:
        results = confirm_all(results, jobs, top=args.confirm[0], seeds=args.confirm[1], n_procs=args.jobs,
                              log_path=log_path)
        if args.reuse is None:
            wall = time.monotonic() - started
        elif fresh_confirm:
            confirm_wall = time.monotonic() - started
    load_after = os.getloadavg()
    if measured and not fresh_confirm:
        load_before, load_after = tuple(measured["before"]), tuple(measured["after"])

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
    per_seed = {"confirmed": per_seed_trend(results, args.sizes, confirmed_rates),
                "median": per_seed_trend(results, args.sizes, median_rates)}
    report = {"command": command, "args": {k: sq.portable(v) for k, v in vars(args).items()},
              "wall_seconds": None if wall is None else round(wall, 1),
              "confirm_wall_seconds": None if confirm_wall is None else round(confirm_wall, 1),
              "load_average": {"before": load_before, "after": load_after},
              "study_seconds": sum(r["seconds"] for r in results),
              "confirm_seconds": sum(r["confirm"]["seconds"] for r in results if "confirm" in r), "sweep": {n: {str(s): v for s, v in r.items()} for n, r in table.items()},
              "trend": trend, "per_seed_trend": per_seed,
              "confirmed": {f"{r['task']}/{r['train_size']}/{r['seed']}": r["confirm"] for r in results if "confirm" in r}}
    (args.out / f"{args.prefix}.json").write_text(json.dumps(report, indent=1))

    took = (f"{wall / 60:.1f} min wall" if wall is not None
            else f"re-summarised from logged studies that took {sum(r['seconds'] for r in results) / 60:.1f} min in all")
    if any("confirm" in r for r in results):
        took += (f": searches {sum(r['seconds'] for r in results) / 60:.1f} min, confirmations "
                 f"{sum(r['confirm']['seconds'] for r in results if 'confirm' in r) / 60:.1f} min")
    if confirm_wall is not None:
        took += f"; confirmation added now: {confirm_wall / 60:.1f} min wall"
    load = f"load average (1, 5, 15 min) {_load(load_before)} at the start, {_load(load_after)} at the end"
    lines = [f"# Data-size sweep\n\nCommand: `{command}` ({took}; {load})\n",
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
    for name, by_type in trend.items():
        for t, tr in by_type.items():
            lines.append(f"| {name} | {t} | {_rho(tr['spearman'])} | {'yes' if tr['falls'] else 'no'} |")
    if args.confirm is not None:
        lines += confirmed_markdown(results, args.models, args.sizes, per_seed, args.trainer)
    (args.out / f"{args.prefix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(table, trend, args.out / f"{args.prefix}.png", per_seed["confirmed"] if args.confirm is not None else None)
    return 0


def _load(avg: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in avg)


def confirmed_markdown(results: Sequence[Mapping[str, Any]], models: Sequence[str], sizes: Sequence[int],
                       per_seed: Mapping[str, Any], trainer: str) -> list[str]:
    """The md sections of a confirmed sweep: the confirmed rates per study, then ρ per seed."""
    done = sorted((r for r in results if "confirm" in r and r["task"] in models and r["train_size"] in sizes),
                  key=lambda r: (r["task"], r["seed"], r["train_size"]))
    if not done:
        return ["", "No study was confirmed."]
    top, seeds = done[0]["confirm"]["top"], done[0]["confirm"]["seeds"]
    types = [t for t in ("input", "dense", "spatial") if any(t in confirmed_rates(r) for r in done)]
    agree = all(all(math.isclose(v, r["confirm"]["engine_best"].get(t, math.nan), abs_tol=1e-9)
                    for t, v in confirmed_rates(r).items()) for r in done)
    lines = ["", "## Confirmed recommendation per study (one seed each, not pooled)", "",
             f"Each study's top {top} complete trials retrained {seeds} times each with fresh seeds through the "
             f"sweep's own `{trainer}` trainer (the search's trainer; no pruning, the search's epoch budget and "
             "patience; seeds as the engine's confirmation draws them), ranked by mean validation loss. Per layer "
             "type, the rate of the finalist with the best mean. `droptune.recommend.best_trial` on the study with "
             f"these finalists recorded by the engine's `record_finalists` {'picks the same' if agree else 'DIFFERS'}"
             " in every study.", "",
             "| model | train size | seed | " + " | ".join(types)
             + " | finalist (search rank) | confirmed val loss mean ± sd (n) | its search value | search best "
             "| complete trials best at their last epoch |",
             "|---|---|---|" + "---|" * len(types) + "---|---|---|---|---|"]
    moved = 0
    for r in done:
        rec = r["confirm"]["recommendation"]
        if not rec:
            lines.append(f"| {r['task']} | {r['train_size']} | {r['seed']} | no finalist |")
            continue
        f = next(iter(rec.values()))
        ranked = rank_complete(r["trials"])
        rank = [t["number"] for t in ranked].index(f["trial"]) + 1
        moved += rank > 1
        bound = sum(t["best_epoch"] == t["epochs"] - 1 for t in ranked)
        cells = " | ".join("–" if t not in rec else f"{rec[t]['rate']:.2f}" for t in types)
        lines.append(f"| {r['task']} | {r['train_size']} | {r['seed']} | {cells} | {f['trial']} ({rank}) | "
                     f"{f['value_mean']:.4f} ± {f['value_sd']:.4f} ({f['n']}) | {f['search_value']:.4f} | "
                     f"{r['best']['value']:.4f} (trial {r['best']['number']}) | {bound} / {len(ranked)} |")
    lines += ["", f"Confirmation kept another trial than the search's best in {moved} of {len(done)} studies. "
              "A trial whose best epoch is its last was still improving when the epoch budget ran out.",
              "", "Monotonicity per study: Spearman ρ(train size, rate) per seed, for the confirmed rate and for the "
              "study's own top-20 % median (`droptune recommend`'s `recommended`).", "",
              "| model | layer type | seed | confirmed rates by size | ρ confirmed | falls | ρ top-20 % median |",
              "|---|---|---|---|---|---|---|"]
    for model, by_type in per_seed["confirmed"].items():
        for t, by_seed in by_type.items():
            for seed, tr in by_seed.items():
                med = per_seed["median"].get(model, {}).get(t, {}).get(seed, {}).get("spearman")
                lines.append(f"| {model} | {t} | {seed} | {', '.join(f'{v:.2f}' for v in tr['rates'])} | "
                             f"{_rho(tr['spearman'])} | {'yes' if tr['falls'] else 'no'} | {_rho(med)} |")
    return lines


def _rho(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def plot(table: dict[str, dict[int, Any]], trend: dict[str, Any], path: Path,
         confirmed: Mapping[str, Any] | None = None) -> None:
    """Pooled rate per layer type against size (IQR bars); ``confirmed``: per-study rates as crosses.

    Args:
        table: The sweep's rows per model and size.
        trend: Pooled Spearman ρ per model and layer type.
        path: The PNG to write.
        confirmed: :func:`per_seed_trend` of the confirmed rates (None: not drawn).
    """
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
            for seed, tr in (confirmed or {}).get(name, {}).get(t, {}).items():
                ax.plot(tr["sizes"], tr["rates"], marker="x", ls="--", lw=0.8, alpha=0.7, color=color,
                        label=f"{t} confirmed, seed {seed} (ρ={_rho(tr['spearman'])})")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(rows))
        ax.set_xticklabels([str(s) for s in rows])
        ax.set_xlabel("training rows")
        ax.set_ylabel("recommended dropout rate")
        ax.set_title(f"{name}: recommended rate vs data (dotted: textbook prior)", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
