"""The compute-free study (``throughput.py --bookkeeping``): a tiny run of it, per tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _bench_kit import benchmark_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bookkeeping():
    with benchmark_module("bookkeeping") as module:
        yield module


def test_a_tiny_compute_free_study_is_measured_until_mlflow_has_every_run(bookkeeping, tmp_path):
    study = bookkeeping.Study(n_trials=4, max_epochs=2, pack=2, rows=64, storage="journal")
    assert bookkeeping.main([("current", ROOT)], tmp_path, study, variants=[("journal", "mlflow"),
                                                                          ("journal", "none")]) == 0

    mlflow, untracked = json.loads((tmp_path / "throughput_bookkeeping.json").read_text())["results"]
    for run in (mlflow, untracked):
        assert "error" not in run, run
        assert run["trials"] == 4 and run["trial_epochs"] == 8 and run["study_seconds"] > 0
    # Measured until the last MLflow run is closed, and never less than the study's own span
    # (a small packed study writes its runs in process, each just before its trial ends).
    assert mlflow["mlflow_written_seconds"] >= mlflow["study_seconds"] - 0.001
    assert untracked["mlflow_written_seconds"] is None
    table = (tmp_path / "throughput_bookkeeping.md").read_text()
    assert "| current (journal, tracking none) | 8 |" in table
