"""``benchmarks/packed_search.py``: packed against unpacked search, by trial count and by wall-clock."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def ps():
    sys.path.insert(0, str(BENCHMARKS))  # packed_search imports search_quality by name, as a script does
    spec = importlib.util.spec_from_file_location("packed_search", BENCHMARKS / "packed_search.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["packed_search"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("packed_search", None)
    sys.modules.pop("search_quality", None)
    sys.path.remove(str(BENCHMARKS))


def row(number, value, start, end, state="COMPLETE"):
    return {"number": number, "state": state, "value": value, "start": start, "end": end}


# Asked in number order; trial 2 ends before trial 1 (a packed population hands members back as they end).
ROWS = [
    row(0, 1.0, 0.0, 4.0),
    row(1, 0.5, 0.0, 9.0),
    row(2, 0.8, 0.0, 5.0),
    row(3, None, 4.0, 6.0, state="PRUNED"),
    row(4, 0.2, 5.0, 12.0),
    row(5, 0.1, 6.0, None, state="RUNNING"),
    row(6, float("nan"), 9.0, 10.0, state="FAIL"),
]


def test_best_so_far_by_count_uses_trial_numbers_and_complete_trials_only(ps):
    assert ps.best_by_count(ROWS, [1, 2, 4, 5, 7]) == [1.0, 0.5, 0.5, 0.2, 0.2]
    assert ps.best_by_count([row(0, None, 0.0, 1.0, "PRUNED"), row(1, 0.3, 0.0, 2.0)], [1, 2]) == [None, 0.3]


def test_best_so_far_by_time_uses_end_times(ps):
    assert ps.best_by_time(ROWS, [3.9, 4.0, 5.0, 8.0, 9.0, 100.0]) == [None, 1.0, 0.8, 0.8, 0.5, 0.2]
    assert ps.span(ROWS) == 12.0 and ps.span([row(0, None, 0.0, None, "RUNNING")]) == 0.0


def test_seed_figures_put_both_arms_on_the_unpacked_arms_clock(ps):
    unpacked = [row(0, 1.0, 0.0, 10.0), row(1, 0.6, 10.0, 20.0), row(2, 0.4, 20.0, 30.0), row(3, 0.3, 30.0, 40.0)]
    packed = [row(0, 0.9, 0.0, 8.0), row(1, 0.7, 0.0, 9.0), row(2, 0.5, 8.0, 16.0), row(3, 0.35, 9.0, 18.0)]
    fig = ps.seed_figures({"unpacked": unpacked, "packed": packed}, [2, 4])
    assert fig["checkpoints_s"] == [10.0, 20.0, 30.0, 40.0]
    assert fig["unpacked"]["by_time"] == [1.0, 0.6, 0.4, 0.3]
    assert fig["packed"]["by_time"] == [0.7, 0.35, 0.35, 0.35]
    assert fig["packed"]["by_count"] == [0.7, 0.35] and fig["unpacked"]["by_count"] == [0.6, 0.3]
    assert fig["packed"]["span_s"] == 18.0 and fig["packed"]["trials_per_s"] == pytest.approx(4 / 18)
    assert fig["unpacked"]["trials_per_s"] == pytest.approx(0.1)


def test_mean_sd_is_missing_when_a_seed_has_no_result(ps):
    assert ps.mean_sd([1.0, 3.0]) == {"mean": 2.0, "sd": pytest.approx(1.41421356), "n": 2}
    assert ps.mean_sd([2.0]) == {"mean": 2.0, "sd": 0.0, "n": 1}
    assert ps.mean_sd([1.0, None]) == {"mean": None, "sd": None, "n": 1}


def summary(by_count_u, by_count_p, by_time_u, by_time_p, counts=(4, 8, 12)):
    def arm(by_count, by_time):
        return {"by_count": [{"mean": m, "sd": s, "n": 2} for m, s in by_count],
                "by_time": [{"mean": m, "sd": 0.0, "n": 2} for m in by_time]}

    return {"counts": list(counts), "fractions": [0.25, 0.5, 0.75, 1.0],
            "unpacked": arm(by_count_u, by_time_u), "packed": arm(by_count_p, by_time_p)}


def test_verdicts_judge_past_the_first_population_within_one_sd(ps):
    # n=4 is the first population (K=4) and is not judged however bad; n=8, 12 are within max(sd).
    s = summary([(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)], [(9.0, 0.1), (0.9, 0.1), (0.71, 0.01)],
                [1.0, 0.9, 0.8, 0.7], [0.95, 0.85, 0.9, 0.9])
    v = ps.verdicts(s, 4)
    assert v["matches_by_count"] is True and v["counts_failed"] == []
    assert v["beats_by_time"] is True and v["fractions_not_beaten"] == []  # 0.75 and 1.0 are not judged

    s = summary([(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)], [(1.0, 0.1), (0.8, 0.05), (0.75, 0.02)],
                [1.0, 0.9, 0.8, 0.7], [1.0, 0.85, 0.7, 0.6])
    v = ps.verdicts(s, 4)
    assert v["matches_by_count"] is False and v["counts_failed"] == [12]  # 0.75 > 0.7 + 0.02
    assert v["beats_by_time"] is False and v["fractions_not_beaten"] == [0.25]  # equal is not better

    s = summary([(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)], [(1.0, 0.1), (None, None), (0.7, 0.0)],
                [1.0, 0.9, 0.8, 0.7], [None, 0.5, 0.5, 0.5])
    v = ps.verdicts(s, 4)
    assert v["counts_failed"] == [8] and v["fractions_not_beaten"] == [0.25]  # no result is no match
    assert ps.verdicts(s, 8)["matches_by_count"] is None  # no n >= 16 in the grid


def test_a_quick_run_compares_both_arms_for_every_seed(ps, tmp_path):
    assert ps.main(["--quick", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "packed_search.json").read_text())
    settings = report["settings"]
    assert [(s["seed"], s["arm"], s["pack"]) for s in report["studies"]] == [
        (seed, arm, pack) for seed in range(settings["seeds"]) for arm, pack in (("unpacked", 1), ("packed", 4))]
    for study in report["studies"]:
        assert [t["number"] for t in study["trials"]] == list(range(settings["n_trials"]))
        assert all(t["state"] in ("COMPLETE", "PRUNED") for t in study["trials"])
    assert len(report["per_seed"]) == settings["seeds"] == 2
    for seed in report["per_seed"]:
        for arm in ("unpacked", "packed"):
            for curve in (seed[arm]["by_count"], seed[arm]["by_time"]):
                known = [v for v in curve if v is not None]
                assert known and known == sorted(known, reverse=True)  # best-so-far never gets worse
        assert seed["checkpoints_s"][-1] == pytest.approx(seed["unpacked"]["span_s"])
        assert seed["unpacked"]["by_time"][-1] == seed["unpacked"]["by_count"][-1]  # all of it by its own span
    assert set(report["verdicts"]) >= {"matches_by_count", "beats_by_time"}
    md = (tmp_path / "packed_search.md").read_text()
    assert "| 8 |" in md and "Packed matches unpacked" in md and "load average" in md
