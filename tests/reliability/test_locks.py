"""droptune's lock files: a private per-user folder (never another user's), and a long wait
reported with the holder's pid and the lock file."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

import pytest

import droptune.stores._lock
from droptune.exceptions import StudyError
from droptune.stores._lock import file_lock, hold, private_lock_folder


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_the_lock_folder_is_per_user_and_private(tmp_path):
    folder = private_lock_folder(tmp_path)
    assert folder == tmp_path / f"droptune-locks-{os.getuid()}"
    assert mode(folder) == 0o700 and os.lstat(folder).st_uid == os.getuid()
    folder.chmod(0o755)  # as an older droptune left it
    assert private_lock_folder(tmp_path) == folder and mode(folder) == 0o700


def test_a_lock_folder_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    me = os.getuid()
    other = me + 1
    (tmp_path / f"droptune-locks-{other}").mkdir(mode=0o777)  # owned by us: someone else, to "uid other"
    monkeypatch.setattr(droptune.stores._lock.os, "getuid", lambda: other)
    with pytest.raises(StudyError, match=rf"lock folder .*droptune-locks-{other} is a folder owned by uid "
                       rf"{me}, not by you \(uid {other}\).* point TMPDIR at a folder of your own"):
        private_lock_folder(tmp_path)


def test_a_symlink_in_place_of_the_lock_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"droptune-locks-{os.getuid()}").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StudyError, match="is not a folder owned by uid"):
        private_lock_folder(tmp_path)


def test_store_locks_live_in_the_private_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with file_lock(tmp_path / "studies" / "droptune.db"):
        (lock,) = (tmp_path / f"droptune-locks-{os.getuid()}").iterdir()
        assert mode(lock) == 0o600 and lock.read_text() == f"{os.getpid()}\n"
    assert mode(lock.parent) == 0o700


def test_tune_refuses_a_lock_folder_of_another_user_with_one_message(refused, project, monkeypatch):
    base = project.parent / "tmp"
    base.mkdir()
    other = os.getuid() + 1
    (base / f"droptune-locks-{other}").mkdir(mode=0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    monkeypatch.setattr(droptune.stores._lock.os, "getuid", lambda: other)
    refused(["tune", "study.yaml"], rf"error: droptune's lock folder .*droptune-locks-{other} is a folder owned by uid")


def test_a_long_wait_for_a_lock_is_reported_with_its_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(droptune.stores._lock, "REPORT_AFTER_S", 0.0)
    path = tmp_path / "study.lock"
    reported = threading.Event()
    messages: list[str] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())
            if "waiting for the lock" in record.getMessage():
                reported.set()

    handler = Seen(level=logging.WARNING)
    logger = logging.getLogger("droptune.stores._lock")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "disabled", False)
    monkeypatch.setattr(logger, "propagate", False)  # not to a handler an earlier test's CLI left on a closed stream
    got: list[bool] = []
    try:
        with hold(path):  # this process holds it; another open file description must wait
            waiter = threading.Thread(target=lambda: _take(path, got))
            waiter.start()
            assert reported.wait(60), "the wait was never reported"
            assert got == []  # still waiting while held
        waiter.join(60)
    finally:
        logger.removeHandler(handler)
    assert got == [True]
    (message,) = [m for m in messages if "waiting for the lock" in m]
    assert message.startswith(f"waiting for the lock {path}, held by pid {os.getpid()} for more than 0 s")


def _take(path: Path, got: list[bool]) -> None:
    with hold(path):
        got.append(True)


def test_a_lock_is_released_for_the_next_holder(tmp_path):
    path = tmp_path / "x.lock"
    with hold(path):
        pass
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: no BlockingIOError
        assert path.read_text() == ""  # the pid is cleared on release
    finally:
        os.close(fd)
