"""Shared set-up of the reliability tests: a project folder, its snapshot, and the CLI run in it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # _bad_models, for study files run in this process
sys.path.insert(0, str(HERE.parent / "tuning"))  # _workers_kit: misbehaving models, read-back helpers

from _reliability_kit import VALID, snapshot  # noqa: E402  (after the path is set)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder (the working directory) with a valid study file, ``study.yaml``."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "study.yaml").write_text(VALID)
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def refused(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """``refused(argv, pattern)``: the CLI exits 2, stderr matches ``pattern``, the project is unchanged."""
    import re

    import droptune.cli

    monkeypatch.setattr(droptune.cli.err, "width", 100_000)  # one message, one line: no wrapping

    def check(argv: list[str], pattern: str) -> str:
        before = snapshot(project.parent)
        code = droptune.cli.main(argv)
        message = capsys.readouterr().err
        assert code == 2, message
        assert re.search(pattern, message), f"{pattern!r} not in:\n{message}"
        assert "Traceback" not in message
        assert snapshot(project.parent) == before, "a refused command changed the disk"
        return message

    return check
