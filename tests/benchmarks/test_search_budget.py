"""``search_quality.py --budget``: every method gets the same seconds; the exported config is scored."""

from __future__ import annotations

import json

import pytest
from _bench_kit import benchmark_module


@pytest.fixture(scope="module")
def sq():
    with benchmark_module("search_quality") as module:
        yield module


def study(method, seed, accs, n_trials, budget, val=None):
    return {"task": "t", "method": method, "seed": seed, "test_accs": accs, "n_trials": n_trials,
            "budget_s": budget, "seconds": budget, "best_val_loss": val}


def test_summary_pools_every_retrain_and_judges_the_goal(sq):
    from search_budget import budget_markdown, summarize_budget

    tasks = summarize_budget([
        study("vanilla", 0, [0.80, 0.82], 60, 100.0, 0.5), study("vanilla", 1, [0.78, 0.80], 58, 110.0, 0.6),
        study("droptune", 0, [0.90, 0.88], 90, 100.0, 0.4), study("droptune", 1, [0.86, 0.88], 95, 110.0, 0.45),
    ])
    va, dt = tasks["t"]["vanilla"], tasks["t"]["droptune"]
    assert va["test_acc_mean"] == pytest.approx(0.80) and dt["test_acc_mean"] == pytest.approx(0.88)
    assert va["test_acc_sd"] == pytest.approx(0.01632993, rel=1e-5)  # over all 4 retrains
    assert dt["n_trials"] == 92.5 and dt["budget_s"] == 105.0 and va["best_val_loss"] == pytest.approx(0.55)
    assert tasks["t"]["goal"] == {"best_other": "vanilla", "not_worse_than_best_by_one_sd": True,
                                  "better_than_vanilla_by_one_sd": True, "at_least_vanilla": True}
    assert "| t | droptune | 105 | 92.5 (0.0) | 0.4250 | 0.8800 ± 0.0163 (accuracy) |" in budget_markdown(tasks)


def test_time_to_quality_is_the_first_checkpoint_matching_vanillas_score_of_the_same_seed(sq):
    from search_budget import time_to_quality

    vanilla = [study("vanilla", 0, [0.80, 0.82], 20, 100.0), study("vanilla", 1, [0.90, 0.92], 20, 100.0),
               study("vanilla", 2, [0.99, 0.99], 20, 100.0)]
    droptune = [
        study("droptune", 0, [0.84], 9, 100.0) | {"checkpoints": [{"at": 0.25, "test_mean": 0.70},
                                                                  {"at": 0.5, "test_mean": 0.81}]},  # 0.81 >= 0.81
        study("droptune", 1, [0.95], 9, 100.0) | {"checkpoints": [{"at": 0.25, "test_mean": 0.80}]},  # only at the end
        study("droptune", 2, [0.90], 9, 100.0) | {"checkpoints": []},  # never
    ]
    got = time_to_quality(droptune, vanilla, higher_is_better=True)
    assert got["fractions"] == [0.5, 1.0, None] and (got["reached"], got["of"]) == (2, 3)
    assert got["median_fraction"] == pytest.approx(0.75)
    # for a regression (lower is better) the same numbers read the other way
    assert time_to_quality(droptune, vanilla, higher_is_better=False)["fractions"] == [0.25, 0.25, 1.0]


def test_for_a_regression_a_lower_score_is_better(sq):
    from search_budget import goal

    # test MSE: droptune 0.50 against vanilla 0.60 (sd 0.02) and no dropout 0.48 (sd 0.01)
    methods = {"higher_is_better": False,
               "vanilla": {"test_acc_mean": 0.60, "test_acc_sd": 0.02},
               "nodrop": {"test_acc_mean": 0.48, "test_acc_sd": 0.01},
               "droptune": {"test_acc_mean": 0.50, "test_acc_sd": 0.02}}
    verdict = goal(methods)
    assert verdict["best_other"] == "nodrop" and verdict["better_than_vanilla_by_one_sd"]
    assert not verdict["not_worse_than_best_by_one_sd"]  # 0.02 worse than no dropout, more than its sd


def test_a_tiny_budget_run_gives_every_method_vanillas_seconds(sq, tmp_path):
    (tmp_path / "sq.json").write_text(json.dumps({"tasks": {"kept": True}}))  # the trial-count run's results stay
    args = ["--budget", "--tasks", "digits-mlp", "--seeds", "1", "--trials", "5", "--max-epochs", "3",
            "--digits-train-size", "80", "--trainer", "lightning", "--score-seeds", "2", "--confirm-seeds", "2",
            "--out", str(tmp_path), "--prefix", "sq"]
    assert sq.main(args) == 0

    report = json.loads((tmp_path / "sq.json").read_text())
    assert report["tasks"] == {"kept": True}
    tasks = report["budget"]["tasks"]["digits-mlp"]
    assert set(tasks) == {"prior", "vanilla", "random", "droptune", "goal", "metric", "higher_is_better"}
    assert tasks["vanilla"]["n_trials"] == 5  # vanilla's run for --trials trials set the budget ...
    budget = tasks["vanilla"]["budget_s"]
    for name in ("random", "droptune"):  # ... that the others got
        assert tasks[name]["budget_s"] == pytest.approx(budget) and tasks[name]["n_trials"] >= 1
    for name in ("prior", "vanilla", "random", "droptune"):
        m = tasks[name]
        assert m["n_scores"] == 2 and 0.0 <= m["test_acc_mean"] <= 1.0 and m["test_acc_sd"] is not None
    droptune = next(s for s in report["budget"]["studies"] if s["method"] == "droptune")
    # droptune's arm is the user's path: its confirmation fits in what is left of the budget (at a
    # tiny budget maybe none), as many retrains for every finalist (paired: a round the deadline
    # cut short is not counted), read back from the study it exported.
    assert droptune["confirm_trials"] in (droptune["confirm_top"], 2 * droptune["confirm_top"])
    # its incumbents along the budget were scored too (time to vanilla's quality)
    assert all(0 < c["at"] < 1 and 0.0 <= c["test_mean"] <= 1.0 for c in droptune.get("checkpoints", []))
    assert tasks["droptune"]["time_to_vanilla"]["of"] == 1
    assert len(droptune["test_losses"]) == 2 and tasks["droptune"]["test_loss_mean"] > 0
    assert (droptune["confirmed_val_mean"] is None) == (droptune["confirm_top"] == 0)
    assert "| digits-mlp | droptune |" in (tmp_path / "sq_budget.md").read_text()


def test_a_pruner_variant_runs_the_engine_with_that_pruner(sq, tmp_path):
    args = ["--budget", "--tasks", "digits-mlp", "--seeds", "1", "--trials", "3", "--max-epochs", "2",
            "--digits-train-size", "80", "--score-seeds", "1", "--confirm-seeds", "2",
            "--methods", "vanilla", "droptune", "dt-nopruner", "--out", str(tmp_path), "--prefix", "sq"]
    assert sq.main(args) == 0

    studies = {s["method"]: s for s in json.loads((tmp_path / "sq.json").read_text())["budget"]["studies"]}
    assert studies["droptune"]["pruner"] == "EvidencePruner"  # the engine's "median"
    assert studies["dt-nopruner"]["pruner"] == "NopPruner"


def test_reuse_runs_only_the_studies_the_log_lacks(sq, tmp_path, monkeypatch):
    import search_budget

    ran = []

    def fake_job(job):
        ran.append((job.method, job.seed))
        return study(job.method, job.seed, [0.5 + len(ran) / 100], 3, job.budget_s or 10.0, 1.0) | {
            "task": job.task.name}

    monkeypatch.setattr(search_budget, "run_budget_job", fake_job)
    base = ["--budget", "--tasks", "digits-mlp", "--trials", "3", "--out", str(tmp_path), "--prefix", "sq"]
    assert sq.main(base + ["--seeds", "1", "--methods", "vanilla", "droptune"]) == 0
    first = (tmp_path / "sq_budget.jsonl").read_text().splitlines()
    assert ran == [("vanilla", 0), ("droptune", 0)] and len(first) == 2

    ran.clear()
    log = tmp_path / "sq_budget.jsonl"
    assert sq.main(base + ["--seeds", "2", "--methods", "vanilla", "droptune", "dt-hyperband",
                           "--reuse", str(log)]) == 0
    assert ran == [("dt-hyperband", 0), ("vanilla", 1), ("droptune", 1), ("dt-hyperband", 1)]
    lines = log.read_text().splitlines()
    assert lines[:2] == first and len(lines) == 6  # the earlier studies kept, the new ones appended
    report = json.loads((tmp_path / "sq.json").read_text())["budget"]
    assert report["tasks"]["digits-mlp"]["vanilla"]["n_searches"] == 2
    assert report["tasks"]["digits-mlp"]["dt-hyperband"]["budget_s"] == 10.0  # vanilla's (reused) budget
