"""Search quality at equal wall-clock budget: ``search_quality.py --budget``.

Per task and search seed, every method gets the same seconds: by default what vanilla
Optuna needs for ``--trials`` trials (vanilla runs first and sets the budget), or a fixed
``--budget-s``. Methods:

- ``vanilla``: ``TPESampler(seed)``, ``suggest_float(site, 0, 0.8)`` per dropout layer,
  ``MedianPruner()``, one process, the benchmark's own trial loop (as Optuna's docs write it);
- ``random``: ``RandomSampler(seed)`` over the same space, same loop, same budget;
- ``prior``: the textbook rates (one configuration, no search: it uses no budget);
- ``droptune``: the real engine with a study file's defaults (SQLite storage, no MLflow,
  ``--pack`` members per population), searching for ``1 - --confirm-share`` of the budget,
  then ``droptune.tuning._confirm.confirm`` retraining the top configurations with
  ``--confirm-seeds`` fresh seeds in what is left; it exports the best confirmed mean;
- ``dt-nopruner``, ``dt-hyperband``, ``dt-sh``: ``droptune`` with another ``search.pruner``
  (none, hyperband, successive_halving), the variants the default pruner is chosen against.

Each method's score is the configuration it would export, retrained on the training split
with ``--score-seeds`` fresh seeds (for the epochs its search trial found best) and scored
on the test split, which no search sees. Written to ``<prefix>.json`` under
``budget.tasks.<task>.<method>`` (``test_acc_mean``, ``test_acc_sd``, ``n_trials``,
``budget_s``...) and as a table in ``<prefix>_budget.md``. Every finished study is appended
to ``<prefix>_budget.jsonl`` as it ends, so ``--reuse`` of that log resumes a stopped run (or
adds seeds and methods to a finished one) without running its studies again.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import (  # noqa: E402  (the benchmark's tasks and trainers)
    TRAINERS,
    Task,
    UniformSpace,
    _quiet,
    load_data,
    task_settings,
    task_sites,
    test_scores,
)

# droptune's engine under each pruner it offers: the default ("median") and the variants it
# was chosen against at equal budget (issue 15).
DROPTUNE_PRUNERS = {"droptune": "median", "dt-nopruner": "none", "dt-hyperband": "hyperband",
                    "dt-sh": "successive_halving"}
BUDGET_METHODS = ("prior", "nodrop", "vanilla", "random", *DROPTUNE_PRUNERS)
CHECKPOINTS = (0.25, 0.5, 0.75)  # fractions of the budget at which droptune's incumbent is scored
BASELINES = ("prior", "nodrop")  # one configuration each, no search: they use no budget
SEARCHED = {"vanilla": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}


@dataclass(frozen=True)
class BudgetJob:
    """One study of one method under a wall-clock budget (None: vanilla sets it with ``trials``)."""

    task: Task
    method: str
    seed: int
    budget_s: float | None
    trials: int
    max_epochs: int
    patience: int | None
    trainer: str
    score_seeds: int
    confirm_top: int
    confirm_seeds: int
    confirm_share: float
    pack: int


def search_loop(job: BudgetJob, data: dict[str, Any]) -> dict[str, Any]:
    """Vanilla or random search: trials until ``trials`` (no budget given) or the deadline."""
    fit = TRAINERS[job.trainer]
    sites = task_sites(job.task, data)
    study = optuna.create_study(sampler=SEARCHED[job.method](seed=job.seed), pruner=optuna.pruners.MedianPruner())
    space, started = UniformSpace(), time.monotonic()
    best: dict[str, Any] | None = None
    n = 0
    while (n < job.trials) if job.budget_s is None else (time.monotonic() - started < job.budget_s):
        trial = study.ask()
        rates = space.suggest(trial, sites)
        extra = {"integration": True} if job.trainer == "lightning" else {}  # optuna-integration's callback
        result, _ = fit(job.task, data, rates, seed=1000 * job.seed + n, max_epochs=job.max_epochs,
                        patience=job.patience, trial=trial, **extra)
        n += 1
        if result.pruned:  # before the finite check: a trial pruned at epoch 0 has no value, and is no failure
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif not math.isfinite(result.value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, result.value)
            if best is None or result.value < best["value"]:
                best = {"value": result.value, "rates": rates, "best_epoch": result.best_epoch}
    pruned = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,)))
    return {"n_trials": n, "n_pruned": pruned, "seconds": time.monotonic() - started, "chosen": best,
            "best_val_loss": best["value"] if best else None}


def droptune_search(job: BudgetJob, folder: Path) -> dict[str, Any]:
    """droptune's defaults through the user's own path: ``droptune.api.run_tune`` with the budget as
    the study's ``timeout`` (it keeps a share for confirming its leaders, then exports)."""
    from droptune.api import run_tune
    from droptune.config import spec_from_dict
    from droptune.export import export_best
    from droptune.record import BEST_EPOCH_ATTR, confirmed_finalists
    from droptune.tuning import count_trials

    assert job.budget_s is not None  # vanilla ran first and set it
    started, wall_start = time.monotonic(), datetime.datetime.now()
    spec = spec_from_dict({
        "name": f"{job.task.name}-{job.method}-{job.seed}",
        "model": {"class_path": job.task.model, "init_args": job.task.model_args},
        "data": {"class_path": job.task.data, "init_args": job.task.data_args},
        "search": {"n_trials": 100_000, "timeout": job.budget_s, "pack": job.pack, "heartbeat_interval": None,
                   "pruner": DROPTUNE_PRUNERS[job.method]},
        "trainer": {"max_epochs": job.max_epochs, "early_stopping_patience": job.patience,
                    "accelerator": "cpu" if not torch.cuda.is_available() else "auto"},
        "storage": f"sqlite:///{folder / 'droptune.db'}", "tracking_uri": "none", "seed": job.seed,
    })
    study = run_tune(spec)  # creating the stores counts against the budget too
    counts = count_trials(study)
    if not counts.complete:  # as vanilla's loop, a search runs at least one trial, over budget if it must
        once = replace(spec, search=replace(spec.search, n_trials=counts.finished + 1, timeout=None))
        study = run_tune(once, confirm=False)
        counts = count_trials(study)
    finalists = confirmed_finalists(study.user_attrs)
    chosen = None
    if counts.complete:
        config = export_best(study)
        trial = study.trials[config["trial"]]
        chosen = {"value": config["value"], "rates": config["rates"], "best_epoch": trial.user_attrs[BEST_EPOCH_ATTR]}
    return {
        "incumbents": incumbents(study, wall_start, job.budget_s),
        "n_trials": counts.finished, "n_pruned": counts.pruned, "n_failed": counts.failed,
        "seconds": time.monotonic() - started, "chosen": chosen,
        "pruner": type(study.pruner).__name__, "best_val_loss": study.best_value if counts.complete else None,
        "confirm_top": len(finalists), "confirm_trials": sum(f["n"] for f in finalists),
        "confirmed_val_mean": finalists[0]["value_mean"] if finalists else None,
    }


def incumbents(study: optuna.Study, wall_start: datetime.datetime, budget_s: float) -> list[dict[str, Any]]:
    """The search's best complete trial at each of :data:`CHECKPOINTS` (fractions of the budget):
    what the study would have handed over had it been stopped then (before any confirmation)."""
    from droptune.record import BEST_EPOCH_ATTR, site_rates

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.datetime_complete is not None and t.value is not None and math.isfinite(t.value)]
    out = []
    for at in CHECKPOINTS:
        cutoff = wall_start + datetime.timedelta(seconds=at * budget_s)
        before = [t for t in done if t.datetime_complete <= cutoff]
        if before:
            best = min(before, key=lambda t: t.value)
            out.append({"at": at, "trial": best.number, "rates": site_rates(best),
                        "best_epoch": best.user_attrs[BEST_EPOCH_ATTR]})
    return out


def score(job: BudgetJob, data: dict[str, Any], chosen: dict[str, Any]) -> tuple[list[float], list[float]]:
    """``chosen`` retrained with ``job.score_seeds`` fresh seeds (none used by any search): the
    test scores (accuracy, or the task's metric) and test losses."""
    fit = TRAINERS[job.trainer]
    scores, losses = [], []
    for i in range(job.score_seeds):
        _, model = fit(job.task, data, chosen["rates"], seed=2 * 10**6 + 1000 * job.seed + i,
                       max_epochs=chosen["best_epoch"] + 1, patience=None, trial=None)
        s, loss = test_scores(model, data)
        scores.append(s)
        losses.append(loss)
    return scores, losses


def run_budget_job(job: BudgetJob) -> dict[str, Any]:
    """Search (or not, for the prior), then score the configuration the method would export."""
    torch.set_num_threads(1)
    _quiet()
    data = load_data(job.task, job.trainer)
    if job.method in BASELINES:
        from droptune.space import SearchSpace

        sites = SearchSpace().select(task_sites(job.task, data))
        rates = (SearchSpace().rates_from_params(SearchSpace().prior_params(sites), sites) if job.method == "prior"
                 else {site.name: 0.0 for site in sites})
        # One training with early stopping finds the epochs to retrain for, as a search trial does.
        result, _ = TRAINERS[job.trainer](job.task, data, rates, seed=3 * 10**6 + job.seed,
                                          max_epochs=job.max_epochs, patience=job.patience, trial=None)
        out = {"n_trials": 1, "seconds": 0.0, "best_val_loss": result.value,
               "chosen": {"rates": rates, "best_epoch": result.best_epoch}}
    elif job.method in DROPTUNE_PRUNERS:
        with tempfile.TemporaryDirectory() as folder:
            out = droptune_search(job, Path(folder))
    else:
        out = search_loop(job, data)
    out.update(task=job.task.name, method=job.method, seed=job.seed,
               budget_s=job.budget_s if job.budget_s is not None else out["seconds"])
    chosen = out["chosen"]
    if chosen is not None:
        out["test_accs"], out["test_losses"] = score(job, data, chosen)  # test_accs: accuracy, or mse
        out["metric"] = job.task.metric
        # Time to quality: the incumbent at each checkpoint, scored as the export is (one scoring
        # per distinct trial; the last checkpoint's is usually the export's own search trial).
        scored: dict[int, float] = {}
        for inc in out.pop("incumbents", []):
            if inc["trial"] not in scored:
                scored[inc["trial"]] = statistics.fmean(score(job, data, inc)[0])
            out.setdefault("checkpoints", []).append({"at": inc["at"], "trial": inc["trial"],
                                                      "test_mean": scored[inc["trial"]]})
    return out


def summarize_budget(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per task and method: test score of the exported config (mean ± sd over every retrain
    of every search seed), trials run, best validation loss, budget (means over search seeds).

    The score keys keep their historical names (``test_acc_mean``...); ``metric`` and
    ``higher_is_better`` say what they hold (accuracy, or mse for a regression)."""
    from search_quality import TASKS  # noqa: PLC0415  (the metric of each task)

    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        by.setdefault(r["task"], {}).setdefault(r["method"], []).append(r)
    tasks: dict[str, Any] = {}
    for task, methods in by.items():
        metric = TASKS[task].metric if task in TASKS else "accuracy"
        tasks[task] = {"metric": metric, "higher_is_better": metric == "accuracy"}
        for method, runs in methods.items():
            scores = [a for r in runs for a in r.get("test_accs", [])]
            study_means = [statistics.fmean(r["test_accs"]) for r in runs if r.get("test_accs")]
            vals = [r["best_val_loss"] for r in runs if r.get("best_val_loss") is not None]
            losses = [a for r in runs for a in r.get("test_losses", [])]
            tasks[task][method] = {
                "test_loss_mean": statistics.fmean(losses) if losses else None,
                "test_loss_sd": statistics.stdev(losses) if len(losses) > 1 else None,
                "test_acc_mean": statistics.fmean(scores) if scores else None,
                "test_acc_sd": statistics.stdev(scores) if len(scores) > 1 else None,
                "test_acc_sd_between_searches": statistics.stdev(study_means) if len(study_means) > 1 else None,
                "n_trials": statistics.fmean(r["n_trials"] for r in runs),
                "n_pruned": statistics.fmean(r.get("n_pruned", 0) for r in runs),
                "budget_s": statistics.fmean(r["budget_s"] for r in runs),
                "seconds_used": statistics.fmean(r["seconds"] for r in runs),
                "best_val_loss": statistics.fmean(vals) if vals else None,
                "n_searches": len(runs),
                "n_scores": len(scores),
            }
        tasks[task]["goal"] = goal(tasks[task])
        if "droptune" in methods and "vanilla" in methods:
            tasks[task]["droptune"]["time_to_vanilla"] = time_to_quality(
                methods["droptune"], methods["vanilla"], tasks[task]["higher_is_better"])
    return tasks


def time_to_quality(droptune: Sequence[dict[str, Any]], vanilla: Sequence[dict[str, Any]],
                    higher_is_better: bool) -> dict[str, Any]:
    """Per search seed, the first fraction of the budget at which droptune's incumbent (scored on
    the test split as the export is) matches vanilla's full-budget score of the same seed; 1.0 if
    only the export does, None if not even that. The median is over the seeds that got there."""
    sign = 1.0 if higher_is_better else -1.0
    target = {r["seed"]: statistics.fmean(r["test_accs"]) for r in vanilla if r.get("test_accs")}
    fractions: list[float | None] = []
    for r in droptune:
        if r["seed"] not in target or not r.get("test_accs"):
            continue
        points = [(c["at"], c["test_mean"]) for c in r.get("checkpoints", [])]
        points.append((1.0, statistics.fmean(r["test_accs"])))
        reached = [at for at, m in sorted(points) if sign * (m - target[r["seed"]]) >= 0]
        fractions.append(reached[0] if reached else None)
    got = [f for f in fractions if f is not None]
    return {"fractions": fractions, "reached": len(got), "of": len(fractions),
            "median_fraction": statistics.median(got) if got else None}


def goal(methods: dict[str, Any], method: str = "droptune") -> dict[str, Any] | None:
    """Issue 20's goal lines for one task: droptune never worse than the best other arm by more than
    one sd (that arm's), and better than vanilla TPE by more than one sd (vanilla's)."""
    sign = 1.0 if methods.get("higher_is_better", True) else -1.0
    dt = methods.get(method)
    others = {m: v for m, v in methods.items() if m in ("prior", "nodrop", "vanilla", "random")
              and isinstance(v, dict) and v.get("test_acc_mean") is not None}
    if not dt or dt.get("test_acc_mean") is None or "vanilla" not in others:
        return None
    best_name = max(others, key=lambda m: sign * others[m]["test_acc_mean"])
    best, va = others[best_name], others["vanilla"]
    behind = sign * (best["test_acc_mean"] - dt["test_acc_mean"])
    ahead = sign * (dt["test_acc_mean"] - va["test_acc_mean"])
    return {"best_other": best_name,
            "not_worse_than_best_by_one_sd": behind <= (best["test_acc_sd"] or 0.0),
            "better_than_vanilla_by_one_sd": ahead > (va["test_acc_sd"] or 0.0),
            "at_least_vanilla": ahead >= 0}


def budget_markdown(tasks: dict[str, Any]) -> str:
    """The budget results as one markdown table, and the goal lines per task."""
    lines = ["| task | method | budget (s) | trials run (pruned) | best val loss | test score of the exported config |",
             "|---|---|---|---|---|---|"]
    for task, methods in tasks.items():
        metric = "accuracy" if methods.get("higher_is_better", True) else methods.get("metric", "mse")
        for name in BUDGET_METHODS:
            m = methods.get(name)
            if not m:
                continue
            val = "–" if m["best_val_loss"] is None else f"{m['best_val_loss']:.4f}"
            acc = "–" if m["test_acc_mean"] is None else f"{m['test_acc_mean']:.4f} ± {m['test_acc_sd'] or 0:.4f}"
            lines.append(f"| {task} | {name} | {m['budget_s']:.0f} | {m['n_trials']:.1f} ({m.get('n_pruned', 0):.1f}) "
                         f"| {val} | {acc} ({metric}) |")
    lines += ["", "| task | best other arm | droptune not worse than it by > 1 sd | droptune better than vanilla "
              "by > 1 sd | test loss: droptune vs vanilla | time to vanilla's score (share of budget, seeds) |",
              "|---|---|---|---|---|---|"]
    for task, methods in tasks.items():
        g = methods.get("goal")
        if g:
            dt, va = methods["droptune"], methods["vanilla"]
            loss = "–"
            if dt.get("test_loss_mean") is not None and va.get("test_loss_mean") is not None:
                loss = f"{dt['test_loss_mean']:.4f} vs {va['test_loss_mean']:.4f} ± {va['test_loss_sd'] or 0:.4f}"
            ttq = dt.get("time_to_vanilla") or {}
            when = "–"
            if ttq.get("of"):
                median = ttq["median_fraction"]
                when = (f"{median:.0%} median, reached in {ttq['reached']} of {ttq['of']}" if median is not None
                        else f"not reached (0 of {ttq['of']})")
            lines.append(f"| {task} | {g['best_other']} | {'yes' if g['not_worse_than_best_by_one_sd'] else 'NO'} "
                         f"| {'yes' if g['better_than_vanilla_by_one_sd'] else 'no'} | {loss} | {when} |")
    return "\n".join(lines) + "\n"


def reused_studies(path: Path | None) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The finished studies of an earlier run's ``_budget.jsonl`` log, by (task, method, seed)."""
    if path is None or not path.exists():
        return {}
    studies = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(r["task"], r["method"], r["seed"]): r for r in studies}


def run_budget(args: Any, argv: Sequence[str] | None) -> int:
    """``search_quality.py --budget``: vanilla first (it sets each seed's budget), then the others."""
    methods = [m for m in args.methods if m in BUDGET_METHODS]
    if args.budget_s is None and "vanilla" not in methods:
        raise SystemExit("--budget without --budget-s needs the vanilla method: its run sets each seed's budget.")
    log_path = args.out / f"{args.prefix}_budget.jsonl"
    earlier = reused_studies(args.reuse)
    if args.reuse != log_path:
        log_path.write_text("".join(json.dumps(r) + "\n" for r in earlier.values()))
    started, results = time.monotonic(), []
    # Seeds outermost: a run stopped part-way has every task at the same number of seeds.
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.tasks:
            task, max_epochs, patience = task_settings(args, name)
            budget = args.budget_s
            for method in sorted(methods, key=lambda m: m != "vanilla"):  # vanilla first: it sets the budget
                result = earlier.get((name, method, seed))
                if result is None:
                    job = BudgetJob(task, method, seed, budget, args.trials, max_epochs, patience, args.trainer,
                                    args.score_seeds, args.confirm_top, args.confirm_seeds, args.confirm_share,
                                    args.pack)
                    result = run_budget_job(job)
                    result.pop("chosen", None)
                    with log_path.open("a") as log:  # one line per finished study: a stopped run loses none
                        log.write(json.dumps(result) + "\n")
                    print(f"[{time.monotonic() - started:7.0f}s] {name} {method} seed {seed}: {result['n_trials']} "
                          f"trials in {result['seconds']:.0f}s, test acc {result.get('test_accs')}", file=sys.stderr)
                results.append(result)
                budget = budget if budget is not None else result["budget_s"]
    wall = time.monotonic() - started
    tasks = summarize_budget(results)
    command = "python benchmarks/search_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
    path = args.out / f"{args.prefix}.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["budget"] = {"command": command, "wall_seconds": round(wall, 1), "cpu": os.cpu_count(),
                        "cuda": torch.cuda.is_available(), "load_average_at_end": os.getloadavg(),
                        "tasks": tasks, "studies": results}
    path.write_text(json.dumps(report, indent=1))
    table = budget_markdown(tasks)
    (args.out / f"{args.prefix}_budget.md").write_text(
        f"# Search quality at equal wall-clock budget\n\nCommand: `{command}` ({wall / 60:.1f} min wall, "
        f"{'GPU' if torch.cuda.is_available() else f'{os.cpu_count()}-core CPU'}, load average at the end "
        f"{os.getloadavg()[0]:.1f})\n\n{table}")
    print(table)
    return 0
