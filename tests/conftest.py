"""Shared test setup: CPU-only by default, GPU tests skipped without CUDA."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

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


# Headless Chromium as DESIGN.md measured it here; each test adds its window, time budget
# and, for offline pages, a dead proxy.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--run-all-compositor-stages-before-draw",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class Chromium:
    """The browser the page tests drive."""

    binary: str

    def run(self, tmp_path: Path, *args: str) -> str:
        """Run it headless on a fresh profile under ``tmp_path``; ``--dump-dom`` output is returned."""
        profile = tmp_path / f"profile-{time.monotonic_ns()}"
        result = subprocess.run(
            [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """Debian's Chromium (``.ci/run`` installs it); the test is skipped where it is missing."""
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if found is None:
        pytest.skip("headless browser check needs Chromium: apt-get install -y chromium")
    return Chromium(found)
