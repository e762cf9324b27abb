"""droptune._io: a file written all at once gets the permissions open(path, "w") would give it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from droptune._io import atomic_write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, and restore it after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002], ids=["022", "077", "002"])
def test_a_new_file_follows_the_umask_as_open_would(tmp_path, umask, mask):
    umask(mask)
    written = atomic_write_text(tmp_path / "best.yaml", "rates: {}\n")
    with open(tmp_path / "plain.yaml", "w") as handle:  # what a plain write gives, for comparison
        handle.write("rates: {}\n")
    assert _mode(written) == _mode(tmp_path / "plain.yaml") == 0o666 & ~mask


def test_a_replaced_file_keeps_its_own_mode(tmp_path, umask):
    target = tmp_path / "best.yaml"
    target.write_text("old\n")
    target.chmod(0o640)
    umask(0o077)  # open(path, "w") on an existing file leaves its mode alone, whatever the umask
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert _mode(target) == 0o640


def test_no_temporary_file_is_left_beside_the_target(tmp_path, umask):
    atomic_write_text(tmp_path / "best.yaml", "rates: {}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml"]
