"""``benchmarks/packed_search.py``: packed against unpacked search, by trial count and by wall-clock."""

from __future__ import annotations

import json

import pytest
from _bench_kit import benchmark_module


@pytest.fixture(scope="module")
def ps():
    with benchmark_module("packed_search") as module:
        yield module


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


def test_trials_finished_by_time_count_every_ended_trial_but_not_running_ones(ps):
    # Ends: 4 (0), 5 (2), 6 (3, pruned), 9 (1), 10 (6, failed), 12 (4); trial 5 is still running.
    assert ps.finished_by_time(ROWS, [0.0, 4.0, 5.9, 6.0, 10.0, 100.0]) == [0, 1, 2, 3, 5, 6]


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
    assert fig["unpacked"]["finished_by_time"] == [1, 2, 3, 4] and fig["packed"]["finished_by_time"] == [2, 4, 4, 4]


def test_the_equal_seconds_arm_is_read_on_the_unpacked_clock_and_trials_past_it_do_not_count(ps):
    unpacked = [row(0, 1.0, 0.0, 10.0), row(1, 0.6, 10.0, 20.0), row(2, 0.4, 20.0, 30.0), row(3, 0.3, 30.0, 40.0)]
    # Its timeout was 40 s: trial 6 started before it, ended after it with the best value.
    timed = [row(0, 0.9, 0.0, 8.0), row(1, 0.7, 0.0, 9.0), row(2, 0.5, 8.0, 16.0), row(3, 0.35, 9.0, 18.0),
             row(4, 0.32, 16.0, 25.0), row(5, 0.28, 18.0, 39.0), row(6, 0.1, 25.0, 47.0)]
    fig = ps.seed_figures({"unpacked": unpacked, "packed": unpacked[:2], "packed_seconds": timed}, [2, 4])
    assert fig["checkpoints_s"] == [10.0, 20.0, 30.0, 40.0]
    assert fig["packed_seconds"]["by_time"] == [0.7, 0.35, 0.32, 0.28]  # not 0.1: trial 6 ended at 47 s
    assert fig["packed_seconds"]["finished_by_time"] == [2, 4, 5, 6]
    assert fig["packed_seconds"]["n_finished"] == 7 and fig["packed_seconds"]["span_s"] == 47.0


def test_aggregate_gives_every_arm_present_in_every_seed(ps):
    def seed(u, t):
        arm = {"by_count": [u], "by_time": [u] * 4, "finished_by_time": [1, 2, 3, 4], "span_s": 4.0,
               "n_finished": 4, "trials_per_s": 1.0}
        fig = {"checkpoints_s": [1.0, 2.0, 3.0, 4.0], "unpacked": arm, "packed": arm}
        if t is not None:
            fig["packed_seconds"] = {**arm, "by_time": [t] * 4, "finished_by_time": [2, 4, 6, 8], "n_finished": 9}
        return fig

    s = ps.aggregate([seed(0.5, 0.3), seed(0.7, 0.5)], [8])
    assert [m["mean"] for m in s["packed_seconds"]["by_time"]] == pytest.approx([0.4] * 4)
    assert [m["mean"] for m in s["packed_seconds"]["finished_by_time"]] == [2.0, 4.0, 6.0, 8.0]
    assert s["packed_seconds"]["n_finished"]["mean"] == 9 and s["unpacked"]["n_finished"]["mean"] == 4
    assert "packed_seconds" not in ps.aggregate([seed(0.5, 0.3), seed(0.7, None)], [8])


def test_mean_sd_is_missing_when_a_seed_has_no_result(ps):
    assert ps.mean_sd([1.0, 3.0]) == {"mean": 2.0, "sd": pytest.approx(1.41421356), "n": 2}
    assert ps.mean_sd([2.0]) == {"mean": 2.0, "sd": 0.0, "n": 1}
    assert ps.mean_sd([1.0, None]) == {"mean": None, "sd": None, "n": 1}


def summary(by_count_u, by_count_p, by_time_u, by_time_p, counts=(4, 8, 12), by_time_t=None):
    """A hand-made aggregate; ``by_time_p`` is the equal-trials arm's, ``by_time_t`` the equal-seconds arm's."""
    def arm(by_count, by_time):
        return {"by_count": [{"mean": m, "sd": s, "n": 2} for m, s in by_count],
                "by_time": [{"mean": m, "sd": 0.0, "n": 2} for m in by_time]}

    out = {"counts": list(counts), "fractions": [0.25, 0.5, 0.75, 1.0],
           "unpacked": arm(by_count_u, by_time_u), "packed": arm(by_count_p, by_time_p)}
    if by_time_t is not None:
        out["packed_seconds"] = arm(by_count_p, by_time_t)
    return out


def test_verdicts_judge_past_the_first_population_within_one_sd(ps):
    # n=4 is the first population (K=4) and is not judged however bad; n=8, 12 are within max(sd).
    s = summary([(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)], [(9.0, 0.1), (0.9, 0.1), (0.71, 0.01)],
                [1.0, 0.9, 0.8, 0.7], [0.95, 0.85, 0.9, 0.9])
    v = ps.verdicts(s, 4)
    assert v["matches_by_count"] is True and v["counts_failed"] == []

    s = summary([(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)], [(1.0, 0.1), (0.8, 0.05), (0.75, 0.02)],
                [1.0, 0.9, 0.8, 0.7], [1.0, 0.85, 0.7, 0.6])
    v = ps.verdicts(s, 4)
    assert v["matches_by_count"] is False and v["counts_failed"] == [12]  # 0.75 > 0.7 + 0.02

    s = summary([(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)], [(1.0, 0.1), (None, None), (0.7, 0.0)],
                [1.0, 0.9, 0.8, 0.7], [None, 0.5, 0.5, 0.5])
    v = ps.verdicts(s, 4)
    assert v["counts_failed"] == [8]  # no result is no match
    assert ps.verdicts(s, 8)["matches_by_count"] is None  # no n >= 16 in the grid


UNPACKED_BY_TIME = [1.0, 0.9, 0.8, 0.7]
BY_COUNT = [(1.0, 0.1), (0.8, 0.05), (0.7, 0.02)]


@pytest.mark.parametrize(("by_time_t", "beats", "not_beaten"), [
    ([0.95, 0.85, 0.75, 0.65], True, []),  # ahead at 0.5 and 1.0
    ([1.5, 0.85, 0.95, 0.65], True, []),  # behind at 0.25 and 0.75: not judged
    ([None, 0.85, 0.75, 0.65], True, []),  # no result yet at 0.25: not judged
    ([0.95, 0.9, 0.75, 0.65], False, [0.5]),  # equal is not better
    ([0.95, 0.85, 0.75, 0.7], False, [1.0]),  # equal at the full budget
    ([0.95, 0.95, 0.75, 0.71], False, [0.5, 1.0]),
    ([0.95, None, 0.75, 0.65], False, [0.5]),  # some seed had no complete trial by 0.5
])
def test_wall_clock_verdict_is_the_equal_seconds_arm_at_half_and_full_budget(ps, by_time_t, beats, not_beaten):
    # The equal-trials arm is far ahead everywhere: it must not decide this verdict.
    s = summary(BY_COUNT, BY_COUNT, UNPACKED_BY_TIME, [0.1, 0.1, 0.1, 0.1], by_time_t=by_time_t)
    v = ps.verdicts(s, 4)
    assert v["beats_by_time"] is beats and v["fractions_not_beaten"] == not_beaten
    assert v["matches_by_count"] is True


def test_wall_clock_verdict_ignores_the_equal_trials_arm(ps):
    # The equal-trials arm is behind everywhere; the equal-seconds arm ahead at 0.5 and 1.0.
    s = summary(BY_COUNT, BY_COUNT, UNPACKED_BY_TIME, [2.0, 2.0, 2.0, 2.0], by_time_t=[0.95, 0.85, 0.75, 0.65])
    assert ps.verdicts(s, 4)["beats_by_time"] is True
    s = summary(BY_COUNT, BY_COUNT, UNPACKED_BY_TIME, [0.1, 0.1, 0.1, 0.1])
    assert ps.verdicts(s, 4)["beats_by_time"] is None  # no equal-seconds arm: not judged


def test_each_seeds_equal_seconds_arm_gets_its_unpacked_span_as_timeout(ps, tmp_path, monkeypatch):
    calls = []

    def fake_run_arm(settings, seed, pack, folder, timeout=None):
        calls.append((seed, pack, timeout))
        length = 10.0 * (seed + 1) if pack == 1 else 4.0  # unpacked span: 10 s for seed 0, 20 s for seed 1
        n = settings.n_trials if timeout is None else int(timeout)  # the timed arm: one trial a second
        rows = [row(i, 1.0 / (i + 1), 0.0, length if timeout is None else i + 1.0) for i in range(n)]
        return rows

    monkeypatch.setattr(ps, "run_arm", fake_run_arm)
    settings = ps.Settings(n_trials=4, pack=2, seeds=2)
    report = ps.run(settings, tmp_path, "test")
    assert calls == [(0, 1, None), (0, 2, None), (0, 2, 10.0), (1, 1, None), (1, 2, None), (1, 2, 20.0)]
    assert [(s["arm"], s["timeout_s"], s["n_trials"]) for s in report["studies"][:3]] == [
        ("unpacked", None, 4), ("packed", None, 4), ("packed_seconds", 10.0, ps.TIMED_N_TRIALS)]
    assert [s["packed_seconds"]["finished_by_time"] for s in report["per_seed"]] == [[2, 5, 7, 10], [5, 10, 15, 20]]
    assert report["verdicts"]["beats_by_time"] is True  # 1/10 and 1/20 against 1/4 at the unpacked span
    md = (tmp_path / "packed_search.md").read_text()
    assert "Packed beats unpacked at equal wall-clock: **yes**" in md
    assert "| unpacked | packed, equal trials | packed, equal seconds | equal seconds − unpacked |" in md
    assert "| 1.0 | 15.0 | 0.2500 ± 0.0000 | 0.2500 ± 0.0000 | 0.0750 ± 0.0354 | -0.1750 | 2/2 |" in md
    assert "| packed, equal seconds | 15.0 ± 7.1 |" in md  # trials finished in all: 10 and 20


def test_a_quick_run_compares_all_three_arms_for_every_seed(ps, tmp_path):
    assert ps.main(["--quick", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "packed_search.json").read_text())
    settings = report["settings"]
    assert [(s["seed"], s["arm"], s["pack"]) for s in report["studies"]] == [
        (seed, arm, pack) for seed in range(settings["seeds"])
        for arm, pack in (("unpacked", 1), ("packed", 4), ("packed_seconds", 4))]
    for study in report["studies"]:
        n = len(study["trials"]) if study["arm"] == "packed_seconds" else settings["n_trials"]
        assert [t["number"] for t in study["trials"]] == list(range(n))
        assert all(t["state"] in ("COMPLETE", "PRUNED") for t in study["trials"])
    for seed, unpacked, timed in zip(range(2), report["studies"][0::3], report["studies"][2::3]):
        # The equal-seconds arm: the seed's unpacked span as timeout, stopped by it and not by n_trials.
        assert timed["timeout_s"] == pytest.approx(report["per_seed"][seed]["unpacked"]["span_s"])
        assert timed["n_trials"] == ps.TIMED_N_TRIALS > len(timed["trials"]) >= 1
        assert unpacked["timeout_s"] is None
        # The timeout counts from tune()'s start, before its first trial: no trial starts after it.
        assert max(t["start"] for t in timed["trials"]) <= timed["timeout_s"] + 0.5
    assert len(report["per_seed"]) == settings["seeds"] == 2
    for seed in report["per_seed"]:
        for arm in ("unpacked", "packed", "packed_seconds"):
            for curve in (seed[arm]["by_count"], seed[arm]["by_time"]):
                known = [v for v in curve if v is not None]
                assert known and known == sorted(known, reverse=True)  # best-so-far never gets worse
        assert seed["checkpoints_s"][-1] == pytest.approx(seed["unpacked"]["span_s"])
        assert seed["unpacked"]["by_time"][-1] == seed["unpacked"]["by_count"][-1]  # all of it by its own span
    assert set(report["verdicts"]) >= {"matches_by_count", "beats_by_time"}
    md = (tmp_path / "packed_search.md").read_text()
    assert "| 8 |" in md and "Packed matches unpacked" in md and "load average" in md
    assert "packed, equal seconds" in md and "Packed beats unpacked at equal wall-clock" in md
