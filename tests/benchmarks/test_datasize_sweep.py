"""The data-size sweep's confirmation bookkeeping and a tiny end-to-end run of it.

Which finalist a confirmed study keeps (best mean over fresh seeds, not the luckiest single
value), the engine's order of retrain seeds, and Spearman ρ per seed are pure functions:
they are tested on hand-made studies.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from _bench_kit import benchmark_module

TYPES = {"input_dropout": "input", "hidden.2": "dense", "hidden.5": "dense"}


@pytest.fixture(scope="module")
def ds():
    with benchmark_module("datasize_sweep") as module:
        yield module


def trial(number: int, value: float | None, rates: tuple[float, float, float], state: str = "complete") -> dict:
    return {"number": number, "state": state, "value": value,
            "rates": dict(zip(TYPES, rates))}


def lucky_study() -> dict[str, Any]:
    """Trial 5 has the best single value; trial 2 has the best mean once retrained."""
    return {
        "task": "mnist1d-mlp", "train_size": 500, "seed": 0, "layer_types": TYPES,
        "trials": [
            trial(0, 1.00, (0.10, 0.50, 0.50)),
            trial(2, 0.95, (0.20, 0.60, 0.40)),
            trial(3, None, (0.0, 0.0, 0.0), state="pruned"),
            trial(5, 0.90, (0.05, 0.30, 0.10)),
            trial(7, 0.97, (0.15, 0.40, 0.40)),
        ],
    }


RETRAINS = {5: [1.10, 1.00, 1.06], 2: [0.98, 1.00, 0.99], 7: [1.20, 0.99]}


def test_rank_complete_keeps_complete_trials_best_value_first(ds: Any) -> None:
    assert [t["number"] for t in ds.rank_complete(lucky_study()["trials"])] == [5, 2, 7, 0]
    tied = [trial(4, 1.0, (0, 0, 0)), trial(1, 1.0, (0, 0, 0)), trial(2, math.nan, (0, 0, 0))]
    assert [t["number"] for t in ds.rank_complete(tied)] == [1, 4]


def test_confirm_schedule_is_seed_major_with_paired_seeds(ds: Any) -> None:
    schedule = ds.confirm_schedule(3, 2, 1_000_003)
    assert [(c, i) for c, i, _ in schedule] == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    assert [s for *_, s in schedule] == [1_000_003] * 3 + [1_000_004] * 3  # retrain i: seed i, as the engine


def test_the_confirmed_recommendation_is_the_best_mean_not_the_best_single_value(ds: Any) -> None:
    study = lucky_study()
    search_values = {t["number"]: t["value"] for t in study["trials"]}
    finalists = ds.summarise_finalists(RETRAINS, search_values)
    assert [f["trial"] for f in finalists] == [2, 5, 7]
    assert min(finalists, key=lambda f: f["search_value"])["trial"] == 5  # what ranking by one value keeps
    best = finalists[0]
    assert best["n"] == 3 and best["value_mean"] == pytest.approx(0.99) and best["value_sd"] == pytest.approx(0.01)

    rates = {t["number"]: t["rates"] for t in study["trials"]}
    rec = ds.confirmed_recommendation(finalists, rates, TYPES)
    assert rec["input"]["rate"] == pytest.approx(0.20)
    assert rec["dense"]["rate"] == pytest.approx(0.50)  # the mean of its two dense sites
    assert rec["dense"]["trial"] == 2 and rec["dense"]["search_value"] == 0.95
    assert ds.confirmed_recommendation([], rates, TYPES) == {}


def test_summarise_finalists_drops_diverged_retrains_and_ties_go_to_the_lower_trial(ds: Any) -> None:
    finalists = ds.summarise_finalists({9: [1.0, math.inf], 4: [1.0], 6: [math.nan]}, {9: 0.8, 4: 0.9})
    assert [(f["trial"], f["n"], f["value_sd"]) for f in finalists] == [(4, 1, 0.0), (9, 1, 0.0)]


def test_droptune_recommend_keeps_the_same_finalist_as_the_sweep(ds: Any) -> None:
    study = lucky_study()
    finalists = ds.summarise_finalists(RETRAINS, {t["number"]: t["value"] for t in study["trials"]})
    engine = ds.engine_best(study, finalists)
    assert engine == pytest.approx({"input": 0.20, "dense": 0.50})  # trial 2, not trial 5


def test_per_seed_trend_gives_one_rho_per_model_type_and_seed(ds: Any) -> None:
    def study(size: int, seed: int, dense: float) -> dict:
        return {"task": "m", "train_size": size, "seed": seed, "rates": {"dense": dense, "input": 0.1}}

    results = [study(250, 0, 0.6), study(1000, 0, 0.4), study(4000, 0, 0.2),
               study(250, 1, 0.2), study(1000, 1, 0.3), study(4000, 1, 0.5), study(8000, 1, 0.0)]
    trend = ds.per_seed_trend(results, [250, 1000, 4000], lambda r: r["rates"])
    assert trend["m"]["dense"][0] == {"sizes": [250, 1000, 4000], "rates": [0.6, 0.4, 0.2],
                                      "spearman": pytest.approx(-1.0), "falls": True}
    assert trend["m"]["dense"][1]["spearman"] == pytest.approx(1.0) and not trend["m"]["dense"][1]["falls"]
    assert trend["m"]["input"][0]["spearman"] is None and not trend["m"]["input"][0]["falls"]  # constant


def test_rates_of_an_unconfirmed_study_are_empty(ds: Any) -> None:
    assert ds.confirmed_rates({"recommendation": None}) == {}
    assert ds.median_rates({"recommendation": None}) == {}
    assert ds.median_rates({"recommendation": {"dense": {"recommended": 0.3}}}) == {"dense": 0.3}


@pytest.mark.parametrize("values", [["1", "1"], ["0"], ["3", "5", "2"]], ids=["one-seed", "no-top", "three"])
def test_confirm_rejects_a_bad_top_or_seeds(ds: Any, values: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        ds.main(["--confirm", *values, "--out", str(tmp_path)])
    assert err.value.code == 2


def test_a_tiny_confirmed_sweep_writes_its_tables_and_reuses_its_log(ds: Any, tmp_path: Path) -> None:
    args = ["--models", "mnist1d-mlp", "--sizes", "2000", "4000", "--seeds", "1", "--trials", "3",
            "--max-epochs", "1", "--trainer", "torch", "--method", "dt-warmup", "--confirm", "2", "2",
            "--out", str(tmp_path), "--prefix", "t"]
    assert ds.main(args) == 0
    report = json.loads((tmp_path / "t.json").read_text())
    confirmed = report["confirmed"]["mnist1d-mlp/2000/0"]
    assert [f["n"] for f in confirmed["finalists"]] == [2, 2]
    assert confirmed["recommendation"]["dense"]["trial"] == confirmed["finalists"][0]["trial"]
    assert confirmed["engine_best"] == pytest.approx({t: v["rate"] for t, v in confirmed["recommendation"].items()})
    assert set(report["per_seed_trend"]["confirmed"]["mnist1d-mlp"]["dense"]) == {"0"}
    md = (tmp_path / "t.md").read_text()
    assert "## Confirmed recommendation per study" in md and "picks the same" in md
    assert "load average" in md

    (tmp_path / "t.json").unlink()  # a re-summary runs nothing: the log holds the confirmations
    assert ds.main([*args, "--reuse"]) == 0
    again = json.loads((tmp_path / "t.json").read_text())
    assert again["confirmed"]["mnist1d-mlp/2000/0"]["finalists"] == confirmed["finalists"]
