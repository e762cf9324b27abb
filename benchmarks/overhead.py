"""The fixed cost of the CLI: what `droptune --version`, `--help` and a tiny `droptune tune` spend.

For each source tree given (the code before and after a change, e.g. a ``git worktree`` of the
parent commit), in the same run, on the same machine:

- wall and CPU time of short commands, each a fresh interpreter: ``python -c pass`` (the
  floor), ``droptune --version``, ``--help``, ``tune --help``, and ``droptune tune`` on a study
  file with a schema mistake (an unknown key), which must be refused at once;
- ``droptune tune`` on a tiny study (``droptune.testing.TinyModule``, 1 trial, 1 epoch, SQLite
  Optuna storage and MLflow store, created fresh): when its first line appears, when its
  first trial's line appears, and its whole wall time;
- the same tiny study run in-process (``main()`` as the console script calls it) with timers
  around the engine's phases (imports, study-file load, pre-flight, Optuna storage, MLflow
  tracker start, the prepare step, the trial, closing the study with its report,
  confirmation, the terminal summary), and the interpreter's start and exit.

Short commands run ``--repeat`` times, the trees taking turns; the minimum and median are
reported (on a shared machine the minimum is the better estimate of the cost, the median of
what a user sees; CPU time moves less with the load than wall time). The tune runs alternate
the trees' order too.

Usage::

    taskset -c 0 python benchmarks/overhead.py --tree before=/tmp/parent --tree after=. \\
        --out benchmarks/results/overhead
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TINY = (
    "name: tiny\nmodel: {class_path: droptune.testing.TinyModule}\n"
    "data: {class_path: droptune.testing.TinyDataModule}\n"
    "search: {n_trials: 1}\ntrainer: {max_epochs: 1, early_stopping_patience: null}\n"
)
MISTAKE = TINY + "serch: {n_trials: 3}\n"  # a typo: refused by the schema
SHORT = {
    "python -c pass": ["-c", "pass"],
    "droptune --version": ["-m", "droptune", "--version"],
    "droptune --help": ["-m", "droptune", "--help"],
    "droptune tune --help": ["-m", "droptune", "tune", "--help"],
    "droptune tune (schema mistake)": ["-m", "droptune", "tune", "mistake.yaml"],
}

# Run in a fresh interpreter inside the study's folder: times the phases of `droptune tune`
# by wrapping the engine's functions (the same names in the trees compared), prints JSON.
PHASES = r'''
import json, sys, time
T0 = time.perf_counter()
phases = {}
def clock(name, since):
    phases[name] = phases.get(name, 0.0) + time.perf_counter() - since
def wrap(owner, attr, name):
    inner = getattr(owner, attr)
    def timed(*args, **kwargs):
        since = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            clock(name, since)
    setattr(owner, attr, timed)
t = time.perf_counter(); import droptune.cli; clock("import droptune.cli", t)
t = time.perf_counter()
from droptune.config import load_config
load_config("tiny.yaml"); clock("load study file (schema, model and data classes: Lightning)", t)
t = time.perf_counter()
import droptune.api, droptune.tuning, droptune.tuning._confirm, droptune.commands._tune, droptune.commands._recommend
clock("import the engine (Optuna, matplotlib, ...)", t)
from droptune.tuning import _confirm, _lifecycle
from droptune.tuning.executors import _fit
from droptune.commands import _tune, _recommend
# prepare_study: where the command takes it from (bound at import in one tree, at call in the other)
wrap(_tune if hasattr(_tune, "prepare_study") else droptune.tuning, "prepare_study", "prepare: total")
for owner, attr, name in [
    (_lifecycle, "preflight", "prepare: pre-flight (one train + one val batch)"),
    (_lifecycle, "load_study", "prepare: Optuna storage (create or open the study)"),
    (_lifecycle, "tracker_for", "prepare: MLflow tracker start (import, store, experiment)"),
    (_lifecycle, "_log_site_table", "prepare: site table on the parent run"),
    (_lifecycle, "run_worker", "run: total (scheduler, trial, writes)"),
    (_fit.FitExecutor, "_run", "run: the trial (build, fit 1 epoch)"),
    (_lifecycle.StudyLifecycle, "finish", "close: total (summary, report, parent run)"),
    (droptune.api, "report_at_end", "close: report (recommendation, plots)"),
    (_confirm, "confirm_by_default", "confirmation"),
    (_tune, "print_summary", "terminal: summary"),
    (_recommend, "print_recommendation", "terminal: recommendation"),
]:
    wrap(owner, attr, name)
sys.argv = ["droptune", "tune", "tiny.yaml"]  # main() as the console script calls it, exit included
t = time.perf_counter(); code = droptune.cli.main(); clock("main(['tune', ...]): total", t)
phases["in-process total"] = time.perf_counter() - T0
print("PHASES " + json.dumps({"code": code, "phases": phases}), file=sys.stderr)
'''


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(tree: Path, args: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU (user + sys) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


def short_commands(trees: dict[str, Path], works: dict[str, Path], repeat: int) -> dict[str, dict[str, Any]]:
    """Each short command, the trees taking turns run after run (a busy spell hits them alike)."""
    runs: dict[str, dict[str, list[tuple[float, float]]]] = {t: {label: [] for label in SHORT} for t in trees}
    for _ in range(repeat):
        for label, args in SHORT.items():
            for name, tree in trees.items():
                wall, cpu, done = _run(tree, args, works[name])
                if label.endswith("(schema mistake)"):
                    assert done.returncode == 2 and "serch" in done.stderr, done.stderr
                else:
                    assert done.returncode == 0, done.stderr
                runs[name][label].append((wall, cpu))
    return {
        name: {
            label: {
                "wall_min_s": min(w for w, _ in times), "wall_median_s": statistics.median(w for w, _ in times),
                "cpu_min_s": min(c for _, c in times),
            }
            for label, times in by_label.items()
        }
        for name, by_label in runs.items()
    }


def tune_lines(tree: Path, work: Path) -> dict[str, float]:
    """When `droptune tune`'s first line, first trial's line and last line appear, when it exits, its CPU time."""
    folder = Path(tempfile.mkdtemp(dir=work))
    (folder / "tiny.yaml").write_text(TINY)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "droptune", "tune", "tiny.yaml"], cwd=folder, env=_env(tree),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    first = first_trial = last = None
    for line in proc.stdout:  # stdout and stderr, as a terminal shows them
        last = time.perf_counter() - start
        first = last if first is None else first
        if first_trial is None and line.startswith("trial 0 "):
            first_trial = last
    code = proc.wait()
    end = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert code == 0 and first is not None and first_trial is not None and last is not None, code
    return {
        "first_line_s": first, "first_trial_line_s": first_trial, "last_line_s": last, "exit_s": end,
        "exit_after_last_line_s": end - last,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
    }


def tune_phases(tree: Path, work: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(dir=work))
    (folder / "tiny.yaml").write_text(TINY)
    wall, cpu, done = _run(tree, ["-c", PHASES], folder)
    found = [line for line in done.stderr.splitlines() if line.startswith("PHASES ")]
    assert found, done.stderr[-3000:]
    result = json.loads(found[-1][len("PHASES "):])
    assert result["code"] == 0, done.stderr[-3000:]
    phases: dict[str, float] = result["phases"]
    phases["process wall (start to exit)"] = wall
    phases["interpreter start and exit (wall - in-process)"] = wall - phases["in-process total"]
    return phases


def commit_of(tree: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    dirty = subprocess.run(  # the package's code only: what the benchmark runs
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "droptune"], cwd=tree, capture_output=True, text=True
    )
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def markdown(results: dict[str, Any]) -> str:
    trees = list(results["trees"])
    head = "| | " + " | ".join(f"{t} ({results['trees'][t]['commit']})" for t in trees) + " |"
    rule = "|---|" + "---|" * len(trees)
    lines = [f"# droptune fixed cost ({results['when']})", "", results["machine"], ""]
    lines += ["## Short commands: wall seconds, min / median of "
              f"{results['repeat']} (CPU seconds, min)", "", head, rule]
    for label in SHORT:
        cells = [results["trees"][t]["short"][label] for t in trees]
        lines.append(f"| `{label}` | " + " | ".join(
            f"{c['wall_min_s']:.2f} / {c['wall_median_s']:.2f} ({c['cpu_min_s']:.2f})" for c in cells) + " |")
    lines += ["", "## `droptune tune` on the tiny study (1 trial, 1 epoch): seconds from start (and CPU seconds)",
              "", head, rule]
    for key in ("first_line_s", "first_trial_line_s", "last_line_s", "exit_s", "exit_after_last_line_s", "cpu_s"):
        lines.append(f"| {key} | " + " | ".join(f"{results['trees'][t]['lines'][key]:.2f}" for t in trees) + " |")
    lines += ["", "## Its phases, timed in-process (seconds; `prepare:`, `run:`, `close:` rows nest in their total)",
              "", head, rule]
    keys = list(dict.fromkeys(k for t in trees for k in results["trees"][t]["phases"]))
    for key in keys:
        cells = [results["trees"][t]["phases"].get(key) for t in trees]
        lines.append(f"| {key} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", metavar="LABEL=DIR", help="a source tree (repeatable; default after=.)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each short command (default 5)")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    parser.add_argument("--note", default="", help="a line about the machine (shared? idle?) for the report")
    args = parser.parse_args(argv)
    trees = dict(t.split("=", 1) for t in (args.tree or ["after=."]))
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "repeat": args.repeat,
        "machine": f"{os.cpu_count()} CPUs visible, {len(os.sched_getaffinity(0))} usable; {args.note}".strip("; "),
        "trees": {},
    }
    with tempfile.TemporaryDirectory(prefix="droptune-overhead-") as tmp:
        paths = {label: Path(folder).resolve() for label, folder in trees.items()}
        works = {label: Path(tmp) / label for label in trees}
        for work in works.values():
            work.mkdir()
            (work / "mistake.yaml").write_text(MISTAKE)
        print("short commands", file=sys.stderr)
        short = short_commands(paths, works, args.repeat)
        lines, phases = {}, {}
        for label, tree in paths.items():  # one tree after the other, each run once
            print(f"{label}: tune, as a user sees it", file=sys.stderr)
            lines[label] = tune_lines(tree, works[label])
        for label, tree in reversed(paths.items()):  # the other order: a trend in the load evens out
            print(f"{label}: tune, phase by phase", file=sys.stderr)
            phases[label] = tune_phases(tree, works[label])
        for label, tree in paths.items():
            results["trees"][label] = {
                "commit": commit_of(tree), "short": short[label], "lines": lines[label], "phases": phases[label],
            }
    text = markdown(results)
    print(text)
    if args.out:
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
        Path(args.out).with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
