"""Shared test setup: CPU-only by default, GPU tests skipped without CUDA."""

from __future__ import annotations

import os

import pytest
import torch

# Tests must never reach a network or a GPU by accident.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

# The models under test are tiny: on a 2-core CI machine, one intra-op thread per process
# is several times faster than torch's default (threads fighting over the cores).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test inside an empty directory (studies/ and mlruns/ are created there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
