"""Packed search against unpacked search: best value by trial count and by wall-clock (issue 12).

A packed study (``search.pack: K``) asks K trials before it knows any result; droptune asks
a population from TPE without the constant liar and refills a slot as soon as a member ends. This benchmark
asks whether that costs search quality, and whether packing buys it back in time.

Per seed, the same study runs three times through droptune's real engine (``spec_from_dict``
-> ``prepare_study`` -> ``tune``; the engine's default sampler and pruner, the prior as trial 0,
SQLite storage in a temporary folder, no MLflow, no heartbeats, CPU unless CUDA), same study
seed each time:

- ``unpacked``: ``pack: 1``, ``n_trials``;
- ``packed``: ``pack: K``, the same ``n_trials`` (the equal-trial-count arm);
- ``packed_seconds``: ``pack: K``, ``search.timeout`` = that seed's unpacked span (seconds
  from its first trial's start to its last trial's end) and ``n_trials`` =
  :data:`TIMED_N_TRIALS`, so that only the timeout stops it (the equal-seconds arm; it runs
  after the unpacked arm of its seed). The engine's timeout counts from ``tune()``'s start
  and stops *starting* trials; the trials running then finish. The comparison itself is
  made on each arm's own clock (seconds since its first trial started), at the same seconds.

The task is one of ``search_quality.py``'s (default ``digits-mlp``: the 64-256-256 MLP on
300 flat digits).

From the stored Optuna trials (trial number = ask order) it reports per arm and seed:

- best-so-far objective over the first n trials, for n in a grid (multiples of K up to
  ``n_trials``; complete trials with a value only);
- best-so-far at wall-clock checkpoints: fractions (0.25, 0.5, 0.75, 1.0) of the *unpacked*
  arm's span for that seed, in seconds since each arm's first trial started, so that "equal
  wall-clock" means the same seconds for every arm; and how many trials had finished by each;
- each arm's span (first trial started to last trial finished) and trials per second.

Means ± sd over seeds, and two verdicts (rules in :func:`verdicts`): ``packed`` matches
unpacked at equal trial count past the first population, and ``packed_seconds`` beats it at
equal wall-clock. Written to
``<out>/packed_search.json`` (everything, every trial) and ``<out>/packed_search.md``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/packed_search.py [--seeds 5] [--n-trials 48] [--pack 8] [--out DIR]
    .venv/bin/python benchmarks/packed_search.py --quick --out scratch   # 2 seeds x 16 trials, K=4, 3 arms
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import RESULTS, TASKS, _quiet  # noqa: E402  (the benchmark's tasks)

ARMS = ("unpacked", "packed", "packed_seconds")
ARM_LABELS = {"unpacked": "unpacked", "packed": "packed, equal trials", "packed_seconds": "packed, equal seconds"}
TIME_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
BEATS_AT = (0.5, 1.0)  # the fractions of the unpacked span at which the equal-seconds arm must be ahead
TIMED_N_TRIALS = 10_000  # the equal-seconds arm's n_trials: large, so that only its timeout stops it


@dataclass(frozen=True)
class Settings:
    """What one benchmark run measures. None: the task's own value."""

    task: str = "digits-mlp"
    n_trials: int = 48
    pack: int = 8
    seeds: int = 5
    max_epochs: int | None = None
    patience: int | None = None
    train_size: int | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}.")
        if self.pack < 2 or self.n_trials < self.pack or self.seeds < 1:
            raise ValueError(f"need pack >= 2, n_trials >= pack and seeds >= 1; got {self}.")

    @property
    def counts(self) -> list[int]:
        """The trial-count grid: multiples of ``pack``, and ``n_trials``."""
        return sorted({*range(self.pack, self.n_trials + 1, self.pack), self.n_trials})


QUICK = Settings(n_trials=16, pack=4, seeds=2, max_epochs=4, patience=2, train_size=100)


# ----------------------------------------------------------------------------- running


def run_arm(settings: Settings, seed: int, pack: int, folder: Path,
            timeout: float | None = None) -> list[dict[str, Any]]:
    """One study through droptune's engine.

    Args:
        settings: The benchmark's settings (task, ``n_trials``, epochs...).
        seed: The study seed.
        pack: ``search.pack``.
        folder: Where the study's SQLite file goes.
        timeout: ``search.timeout`` in seconds; given, ``n_trials`` is :data:`TIMED_N_TRIALS`
            so that only the timeout stops the study.

    Returns:
        Its trials as :func:`trial_rows` gives them.
    """
    from droptune.config import spec_from_dict
    from droptune.tuning import prepare_study

    task = TASKS[settings.task].with_train_size(settings.train_size)
    timed = timeout is not None
    name = f"pack{pack}-timed" if timed else f"pack{pack}"
    spec = spec_from_dict({
        "name": f"{task.name}-{name}-seed{seed}",
        "model": {"class_path": task.model, "init_args": task.model_args},
        "data": {"class_path": task.data, "init_args": task.data_args},
        "search": {"n_trials": TIMED_N_TRIALS if timed else settings.n_trials, "pack": pack,
                   "timeout": timeout, "heartbeat_interval": None},
        "trainer": {"max_epochs": settings.max_epochs or task.max_epochs,
                    "early_stopping_patience": settings.patience if settings.patience is not None else task.patience,
                    "accelerator": "cpu" if not torch.cuda.is_available() else "auto"},
        "storage": f"sqlite:///{folder / (name + '.db')}", "tracking_uri": "none", "seed": seed,
    })
    study = prepare_study(spec).tune()
    return trial_rows(study.get_trials(deepcopy=False))


def trial_rows(trials: Sequence[Any]) -> list[dict[str, Any]]:
    """Optuna trials as plain rows: number, state, value, epochs reported, start/end in seconds since the first start."""
    started = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not started:
        return []
    origin = min(started)

    def seconds(when: Any) -> float | None:
        return None if when is None else (when - origin).total_seconds()

    return [{"number": t.number, "state": t.state.name, "value": t.value, "epochs": len(t.intermediate_values),
             "start": seconds(t.datetime_start), "end": seconds(t.datetime_complete)}
            for t in sorted(trials, key=lambda t: t.number)]


# ----------------------------------------------------------------------------- pure figures


def _complete(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None and math.isfinite(r["value"])]


def best_by_count(rows: Sequence[dict[str, Any]], counts: Sequence[int]) -> list[float | None]:
    """Best (lowest) value among the first n trials by number, for each n; None before any complete one."""
    done = _complete(rows)
    return [min((r["value"] for r in done if r["number"] < n), default=None) for n in counts]


def best_by_time(rows: Sequence[dict[str, Any]], seconds: Sequence[float]) -> list[float | None]:
    """Best value among the trials complete by each time (seconds since the first start); None before any."""
    done = [r for r in _complete(rows) if r["end"] is not None]
    return [min((r["value"] for r in done if r["end"] <= s), default=None) for s in seconds]


def finished_by_time(rows: Sequence[dict[str, Any]], seconds: Sequence[float]) -> list[int]:
    """How many trials (complete, pruned or failed) had ended by each time (seconds since the first start)."""
    ends = [r["end"] for r in rows if r["end"] is not None]
    return [sum(e <= s for e in ends) for s in seconds]


def span(rows: Sequence[dict[str, Any]]) -> float:
    """Seconds from the first trial's start to the last trial's end (0.0 without a finished trial)."""
    ends = [r["end"] for r in rows if r["end"] is not None]
    return max(ends) if ends else 0.0


def seed_figures(arms: dict[str, list[dict[str, Any]]], counts: Sequence[int]) -> dict[str, Any]:
    """One seed's figures for every arm; the time checkpoints are fractions of the unpacked span.

    Args:
        arms: Each arm's trial rows (``unpacked`` is required; the checkpoints come from it).
        counts: The trial-count grid.

    Returns:
        ``checkpoints_s`` and, per arm, best-so-far by count and by time, trials finished by
        each checkpoint, span, trials finished and complete, and trials per second.
    """
    checkpoints = [f * span(arms["unpacked"]) for f in TIME_FRACTIONS]
    out: dict[str, Any] = {"checkpoints_s": checkpoints}
    for arm, rows in arms.items():
        finished = [r for r in rows if r["end"] is not None]
        seconds = span(rows)
        out[arm] = {
            "by_count": best_by_count(rows, counts),
            "by_time": best_by_time(rows, checkpoints),
            "finished_by_time": finished_by_time(rows, checkpoints),
            "span_s": seconds,
            "n_finished": len(finished),
            "n_complete": len(_complete(rows)),
            "trials_per_s": len(finished) / seconds if seconds > 0 else None,
        }
    return out


def mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sd over seeds; mean None when any seed has no value (it had no result yet)."""
    known = [v for v in values if v is not None]
    whole = len(known) == len(values) and bool(known)
    return {"mean": statistics.fmean(known) if whole else None,
            "sd": statistics.stdev(known) if whole and len(known) > 1 else 0.0 if whole else None,
            "n": len(known)}


def aggregate(per_seed: Sequence[dict[str, Any]], counts: Sequence[int]) -> dict[str, Any]:
    """Mean ± sd over seeds of every figure :func:`seed_figures` gives, per arm present in every seed."""
    out: dict[str, Any] = {"counts": list(counts), "fractions": list(TIME_FRACTIONS),
                           "checkpoints_s": [statistics.fmean(s["checkpoints_s"][i] for s in per_seed)
                                             for i in range(len(TIME_FRACTIONS))]}
    for arm in ARMS:
        if not all(arm in s for s in per_seed):
            continue
        runs = [s[arm] for s in per_seed]
        out[arm] = {
            "by_count": [mean_sd([r["by_count"][i] for r in runs]) for i in range(len(counts))],
            "by_time": [mean_sd([r["by_time"][i] for r in runs]) for i in range(len(TIME_FRACTIONS))],
            "finished_by_time": [mean_sd([r["finished_by_time"][i] for r in runs])
                                 for i in range(len(TIME_FRACTIONS))],
            "span_s": mean_sd([r["span_s"] for r in runs]),
            "n_finished": mean_sd([r["n_finished"] for r in runs]),
            "trials_per_s": mean_sd([r["trials_per_s"] for r in runs]),
        }
    return out


def verdicts(summary: dict[str, Any], pack: int) -> dict[str, Any]:
    """Issue 12's two claims, judged on the means over seeds.

    - ``matches_by_count`` (the ``packed`` arm, same ``n_trials``): for every n >= 2 * pack in
      the grid, packed mean <= unpacked mean + max(sd unpacked, sd packed). None when the
      grid has no such n.
    - ``beats_by_time`` (the ``packed_seconds`` arm): its mean < unpacked mean at each
      checkpoint of :data:`BEATS_AT` (0.5 and 1.0 of the unpacked span; 1.0 is the full
      budget). A checkpoint where some seed's equal-seconds arm had no complete trial yet
      fails; None when the summary has no ``packed_seconds`` arm.

    Args:
        summary: What :func:`aggregate` gives.
        pack: K, the population size.

    Returns:
        ``matches_by_count``, ``counts_failed``, ``beats_by_time``, ``fractions_not_beaten``.
    """
    failed: list[int] = []
    judged = 0
    for n, u, p in zip(summary["counts"], summary["unpacked"]["by_count"], summary["packed"]["by_count"]):
        if n < 2 * pack:
            continue
        judged += 1
        if u["mean"] is None or p["mean"] is None or p["mean"] > u["mean"] + max(u["sd"], p["sd"]):
            failed.append(n)
    lost: list[float] = []
    timed = summary.get("packed_seconds")
    if timed is not None:
        for f, u, p in zip(summary["fractions"], summary["unpacked"]["by_time"], timed["by_time"]):
            if f in BEATS_AT and not (p["mean"] is not None and (u["mean"] is None or p["mean"] < u["mean"])):
                lost.append(f)
    return {"matches_by_count": None if not judged else not failed, "counts_failed": failed,
            "beats_by_time": None if timed is None else not lost, "fractions_not_beaten": lost}


# ----------------------------------------------------------------------------- report


def _fmt(m: dict[str, Any]) -> str:
    return "–" if m["mean"] is None else f"{m['mean']:.4f} ± {m['sd']:.4f}"


def _count(m: dict[str, Any], sd: bool = False) -> str:
    if m["mean"] is None:
        return "–"
    return f"{m['mean']:.1f} ± {m['sd']:.1f}" if sd else f"{m['mean']:.1f}"


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    return "–" if a["mean"] is None or b["mean"] is None else f"{a['mean'] - b['mean']:+.4f}"


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown: the command, the conditions, the tables and both verdicts.

    Args:
        report: What :func:`run` writes to ``packed_search.json``.

    Returns:
        The markdown text.
    """
    s, summary, v = report["settings"], report["summary"], report["verdicts"]
    k = s["pack"]
    arms = [a for a in ARMS if a in summary]
    lines = [
        "# Packed search against unpacked search (issue 12)", "",
        f"Command: `{report['command']}`" + _pinned(report) + ".", "",
        f"{s['task']}, seeds 0–{s['seeds'] - 1}, the engine's default sampler and pruner; three arms per "
        f"seed: unpacked (pack 1, {s['n_trials']} trials), packed, equal trials (pack {k}, {s['n_trials']} "
        f"trials) and packed, equal seconds (pack {k}, `search.timeout` = that seed's unpacked span, "
        f"n_trials {TIMED_N_TRIALS}); {report['wall_seconds'] / 60:.1f} min wall on "
        f"{report['device']}; load average (1/5/15 min) at the start "
        f"{'/'.join(f'{x:.2f}' for x in report['load_average_at_start'])}, at the end "
        f"{'/'.join(f'{x:.2f}' for x in report['load_average_at_end'])}.", "",
        "## Best objective after the first n trials (by trial number; mean ± sd over seeds)", "",
        "| n | unpacked | packed, equal trials | packed − unpacked |", "|---|---|---|---|",
    ]
    for n, u, p in zip(summary["counts"], summary["unpacked"]["by_count"], summary["packed"]["by_count"]):
        lines.append(f"| {n}{' (first population)' if n <= k else ''} | {_fmt(u)} | {_fmt(p)} | {_diff(p, u)} |")
    lines += [
        "", "## Best objective at equal wall-clock (seconds since each arm's first trial started)", "",
        "Checkpoints are fractions of the unpacked arm's span (its first trial's start to its last "
        "trial's end), per seed; the seconds shown are their mean. What is equalised: the "
        "equal-seconds arm's `search.timeout` is that span, counted by the engine from `tune()`'s "
        "start (a little before its first trial starts); past it no trial starts and the running "
        "ones finish, so its own span runs over. Every arm is read on its own clock at the same "
        "seconds, so trials ending after the 1.0 checkpoint count for nothing. The equal-trials "
        "arm is shown for reference; it stops when its n_trials are done.", "",
        "| fraction of unpacked span | seconds | " + " | ".join(ARM_LABELS[a] for a in arms)
        + (" | equal seconds − unpacked | equal-seconds seeds with a result |" if "packed_seconds" in arms else " |"),
        "|---|---|" + "---|" * len(arms) + ("---|---|" if "packed_seconds" in arms else ""),
    ]
    for i, (f, sec) in enumerate(zip(summary["fractions"], summary["checkpoints_s"])):
        cells = [_fmt(summary[a]["by_time"][i]) for a in arms]
        if "packed_seconds" in arms:
            t, u = summary["packed_seconds"]["by_time"][i], summary["unpacked"]["by_time"][i]
            cells += [_diff(t, u), f"{t['n']}/{s['seeds']}"]
        lines.append(f"| {f} | {sec:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "Trials finished (complete, pruned or failed) by each checkpoint, mean over seeds:", "",
              "| fraction of unpacked span | " + " | ".join(ARM_LABELS[a] for a in arms) + " |",
              "|---|" + "---|" * len(arms)]
    for i, f in enumerate(summary["fractions"]):
        lines.append(f"| {f} | " + " | ".join(_count(summary[a]["finished_by_time"][i]) for a in arms) + " |")
    lines += ["", "| arm | trials finished in all | span (s) | trials/s |", "|---|---|---|---|"]
    for arm in arms:
        a = summary[arm]
        lines.append(f"| {ARM_LABELS[arm]} | {_count(a['n_finished'], sd=True)} | {_fmt(a['span_s'])} | {_fmt(a['trials_per_s'])} |")
    match = {None: "not judged (no n ≥ 2K in the grid)", True: "**yes**", False: "**no**"}[v["matches_by_count"]]
    beats = {None: "not judged (no equal-seconds arm)", True: "**yes**", False: "**no**"}[v["beats_by_time"]]
    lines += [
        "", "## Verdicts", "",
        f"- Packed matches unpacked at equal trial count past the first population: {match}"
        + (f" (fails at n = {', '.join(map(str, v['counts_failed']))})" if v["counts_failed"] else "") + ". "
        f"Rule: for every n ≥ 2K = {2 * k} in the grid, packed mean ≤ unpacked mean + max(sd unpacked, sd packed).",
        f"- Packed beats unpacked at equal wall-clock: {beats}"
        + (f" (not at {', '.join(map(str, v['fractions_not_beaten']))})" if v["fractions_not_beaten"] else "") + ". "
        "Rule: the equal-seconds arm's mean < unpacked mean at "
        + " and ".join(map(str, BEATS_AT)) + " of the unpacked span (1.0 is the full budget; an arm with no "
        "complete trial yet in some seed does not beat).",
        "", "Per seed (best after all trials, or by the unpacked span for the equal-seconds arm; trials; "
        "span in s): " + "; ".join(_seed_line(i, r) for i, r in enumerate(report["per_seed"])) + ".",
    ]
    return "\n".join(lines) + "\n"


def _pinned(report: dict[str, Any]) -> str:
    cpus = report.get("cpu_affinity")
    if not cpus or len(cpus) >= (os.cpu_count() or 0):
        return ""
    return f", pinned to CPU {','.join(map(str, cpus))} (as by `taskset -c {','.join(map(str, cpus))}`)"


def _seed_line(i: int, r: dict[str, Any]) -> str:
    def best(x: float | None) -> str:
        return "–" if x is None else f"{x:.4f}"

    parts = [f"unpacked {best(r['unpacked']['by_count'][-1])} ({r['unpacked']['n_finished']}) in "
             f"{r['unpacked']['span_s']:.0f}",
             f"packed {best(r['packed']['by_count'][-1])} ({r['packed']['n_finished']}) in {r['packed']['span_s']:.0f}"]
    if "packed_seconds" in r:
        t = r["packed_seconds"]
        parts.append(f"equal seconds {best(t['by_time'][-1])} ({t['finished_by_time'][-1]} by "
                     f"{r['checkpoints_s'][-1]:.0f} s, {t['n_finished']} in all) in {t['span_s']:.0f}")
    return f"seed {i}: " + ", ".join(parts)


def run(settings: Settings, out: Path, command: str) -> dict[str, Any]:
    """Every arm for every seed; write ``packed_search.{json,md}`` under ``out``; return the report.

    Per seed the arms run in order unpacked, packed (equal trials), packed (equal seconds: its
    timeout is the unpacked span just measured).

    Args:
        settings: What to measure.
        out: The results folder (created).
        command: The command line, for the report.

    Returns:
        The report written to ``packed_search.json``.
    """
    torch.set_num_threads(1)
    _quiet()
    load_start, started = os.getloadavg(), time.monotonic()
    per_seed, studies = [], []
    for seed in range(settings.seeds):
        arms: dict[str, list[dict[str, Any]]] = {}
        with tempfile.TemporaryDirectory(prefix="droptune-packed-search-") as folder:
            for arm in ARMS:
                pack = 1 if arm == "unpacked" else settings.pack
                timeout = max(span(arms["unpacked"]), 1e-3) if arm == "packed_seconds" else None
                arms[arm] = run_arm(settings, seed, pack, Path(folder), timeout)
                studies.append({"seed": seed, "arm": arm, "pack": pack, "timeout_s": timeout,
                                "n_trials": TIMED_N_TRIALS if timeout is not None else settings.n_trials,
                                "trials": arms[arm]})
        per_seed.append(seed_figures(arms, settings.counts))
        fig = per_seed[-1]
        print(f"[{time.monotonic() - started:6.0f}s] seed {seed}: "
              + ", ".join(f"{a} best {fig[a]['by_time'][-1]} by {fig['checkpoints_s'][-1]:.0f}s "
                          f"({fig[a]['finished_by_time'][-1]} trials; {fig[a]['n_finished']} in "
                          f"{fig[a]['span_s']:.0f}s)" for a in ARMS), file=sys.stderr, flush=True)
    summary = aggregate(per_seed, settings.counts)
    report = {
        "what": "packed (pack K) vs unpacked (pack 1) search through droptune's engine: same n_trials "
                "(packed) and same seconds (packed_seconds: timeout = the seed's unpacked span), same seeds",
        "command": command, "settings": asdict(settings), "date": time.strftime("%Y-%m-%d"),
        "device": "GPU" if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores visible, 1 torch thread)",
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "wall_seconds": round(time.monotonic() - started, 1),
        "load_average_at_start": list(load_start), "load_average_at_end": list(os.getloadavg()),
        "summary": summary, "verdicts": verdicts(summary, settings.pack), "per_seed": per_seed,
        "studies": studies,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "packed_search.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "packed_search.md").write_text(markdown(report))
    return report


def parser() -> argparse.ArgumentParser:
    d = Settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default=d.task, choices=list(TASKS), help=f"default {d.task}")
    p.add_argument("--n-trials", type=int, default=d.n_trials, help=f"trials per study (default {d.n_trials})")
    p.add_argument("--pack", type=int, default=d.pack, help=f"K, trials per population (default {d.pack})")
    p.add_argument("--seeds", type=int, default=d.seeds, help=f"seeds 0..N-1 (default {d.seeds})")
    p.add_argument("--max-epochs", type=int, default=None, help="max_epochs (default: the task's)")
    p.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: the task's)")
    p.add_argument("--train-size", type=int, default=None, help="training rows (default: the task's)")
    p.add_argument("--quick", action="store_true", help="tiny run: 2 seeds, 16 trials, K=4, 4 epochs, 100 rows; three arms")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        settings = QUICK
    else:
        settings = Settings(task=args.task, n_trials=args.n_trials, pack=args.pack, seeds=args.seeds,
                            max_epochs=args.max_epochs, patience=args.patience, train_size=args.train_size)
    given = list(sys.argv[1:] if argv is None else argv)
    report = run(settings, args.out, " ".join(["python benchmarks/packed_search.py", *given]))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
