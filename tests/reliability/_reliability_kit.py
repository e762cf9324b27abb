"""Helpers of the reliability tests: a valid study file, folder snapshots, study-file writing."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

VALID = """\
name: tiny
model: {class_path: droptune.testing.TinyModule}
data: {class_path: droptune.testing.TinyDataModule}
search: {n_trials: 2, sampler: random, pruner: none}
trainer: {max_epochs: 1, early_stopping_patience: null, accelerator: cpu}
"""


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``, with a hash of each file's bytes."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(Path(root, name), folder) + "/"] = ""
        for name in files:
            path = Path(root, name)
            found[os.path.relpath(path, folder)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def write(folder: Path, text: str, name: str = "study.yaml") -> Path:
    """Write a study file (dedented) and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path
