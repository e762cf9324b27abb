"""The search-quality benchmark's bookkeeping and a tiny end-to-end run of it.

The benchmark's numbers go into the README, so the code that turns trials into curves,
``trials_to_match`` and the goal verdicts is tested like the package's own.
"""

from __future__ import annotations

import json

import pytest
from _bench_kit import benchmark_module


@pytest.fixture(scope="module")
def sq():
    with benchmark_module("search_quality") as module:
        yield module


def test_best_so_far_is_a_running_minimum_over_complete_trials(sq):
    assert sq.best_so_far([None, 3.0, None, 2.0, 5.0]) == [None, 3.0, 3.0, 2.0, 2.0]


def test_trials_to_match_is_one_based_and_none_when_never_reached(sq):
    curve = [None, 3.0, 2.0, 1.0]
    assert sq.trials_to_match(curve, 2.0) == 3
    assert sq.trials_to_match(curve, 3.5) == 2
    assert sq.trials_to_match(curve, 0.5) is None


def test_the_droptune_method_is_the_engines_default_search(sq):
    from droptune.config import SearchSpec
    from droptune.tuning._factories import SAMPLERS

    method = sq._methods()["droptune"]
    assert method.space().granularity == SearchSpec().granularity
    assert method.prior
    assert type(method.sampler(0)) is type(SAMPLERS[SearchSpec().sampler](0))


def _study(method, seed, values, accuracy):
    return {
        "task": "t", "method": method, "seed": seed, "train_size": 10,
        "trials": [{"state": "complete"}] * len(values), "seconds": 1.0,
        "best_curve": values, "test": {"accuracy": accuracy},
    }


def test_summarize_measures_droptune_against_vanillas_final_mean_best(sq):
    results = [
        _study("vanilla", 0, [5.0, 4.0, 3.0, 2.0], 0.6),
        _study("vanilla", 1, [5.0, 5.0, 4.0, 2.0], 0.7),  # final mean best: 2.0
        _study("droptune", 0, [3.0, 2.5, 1.5, 1.5], 0.8),
        _study("droptune", 1, [3.0, 2.5, 2.5, 2.5], 0.9),  # mean curve 3, 2.5, 2.0, 2.0
        _study("prior", 0, [3.0], 0.5),
        _study("prior", 1, [3.0], 0.5),
    ]
    entry = sq.summarize(results, trials=4)["t"]

    assert entry["reference"]["final_best_mean"] == pytest.approx(2.0)
    assert entry["trials_to_match"]["droptune"] == 3
    assert entry["trials_to_match"]["vanilla"] == 4
    assert entry["methods"]["droptune"]["trials_to_match_per_seed"] == [3, None]
    assert entry["methods"]["prior"]["curve_mean"] == [3.0] * 4  # one trial, flat at every budget
    assert entry["goal"] == {"match_vanilla_within_15": True, "beats_prior_val": True, "beats_prior_test_acc": True}


def test_summarize_reports_a_missed_goal(sq):
    results = [
        _study("vanilla", 0, [1.0], 0.6),
        _study("droptune", 0, [2.0], 0.4),
        _study("prior", 0, [1.5], 0.5),
    ]
    goal = sq.summarize(results, trials=1)["t"]["goal"]
    assert goal == {"match_vanilla_within_15": False, "beats_prior_val": False, "beats_prior_test_acc": False}


def test_a_tiny_run_writes_every_result_and_reuses_its_log(sq, tmp_path):
    args = ["--tasks", "digits-mlp", "--methods", "prior", "vanilla", "droptune", "--seeds", "1",
            "--trials", "4", "--max-epochs", "2", "--digits-train-size", "80", "--trainer", "torch",
            "--out", str(tmp_path), "--prefix", "sq", "--noise-seeds", "2"]
    assert sq.main(args) == 0

    report = json.loads((tmp_path / "sq.json").read_text())
    assert set(report["trials_to_match"]) == {"digits-mlp"}
    assert (tmp_path / "sq.md").read_text().startswith("# Search quality")
    assert (tmp_path / "sq.png").stat().st_size > 0
    studies = {r["method"]: r for r in map(json.loads, (tmp_path / "sq.jsonl").read_text().splitlines())}
    assert sorted(studies) == ["droptune", "prior", "vanilla"]
    assert len(studies["prior"]["trials"]) == 1 and len(studies["vanilla"]["trials"]) == 4

    # droptune's trial 0 is the textbook prior; vanilla searches the hand-written [0, 0.8] space.
    assert studies["droptune"]["trials"][0]["rates"] == studies["prior"]["trials"][0]["rates"]
    assert all(0.0 <= r <= sq.VANILLA_HIGH for t in studies["vanilla"]["trials"] for r in t["rates"].values())
    assert all("accuracy" in r["test"] for r in studies.values())

    # The noise floor retrains vanilla's best configuration with fresh seeds.
    noise = report["tasks"]["digits-mlp"]["noise"]
    assert noise["rates"] == studies["vanilla"]["best"]["rates"]
    assert len(noise["values"]) == 2 and noise["values"][0] != noise["values"][1]
    assert "Trial noise" in (tmp_path / "sq.md").read_text()

    # A rerun that reuses the log trains nothing and keeps the run's command.
    log = (tmp_path / "sq.jsonl").read_text()
    assert sq.main([*args, "--reuse", str(tmp_path / "sq.jsonl")]) == 0
    assert (tmp_path / "sq.jsonl").read_text() == log
    assert json.loads((tmp_path / "sq.json").read_text())["command"] == report["command"]
