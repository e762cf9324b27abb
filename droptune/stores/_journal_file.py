"""Optuna's journal file, made safe against a torn last line (a full disk, a kill mid-append).

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` appends each write as one JSON
line. An append cut short (the disk filled up, the process was killed between ``write`` and
its end) leaves an unterminated last line; Optuna skips it when reading, but the next append
is glued onto it, and from then on every read of the file fails with ``JSONDecodeError``:
the whole study is lost. :class:`SafeJournalFileBackend` keeps that from happening:

- an append that fails (``OSError``, e.g. ``ENOSPC``) truncates the file back to its size
  before the append, under the journal's lock, and is raised as a :class:`JournalWriteError`;
- opening the file sets a torn last line aside, under the lock (so never a line another
  process is still writing), into ``<journal>.torn`` beside the journal, and logs one warning;
- a file already damaged (a torn line with later lines glued onto it, as left by droptune
  before this module) is repaired on read: the glued record that follows the torn bytes is
  kept when it parses, the torn bytes go to ``<journal>.torn``, and reading goes on.

Nothing is silently dropped: every byte removed from the journal is in the ``.torn`` file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import get_lock_file

from droptune.exceptions import DroptuneError

__all__ = ["JournalWriteError", "SafeJournalFileBackend", "TORN_SUFFIX"]

log = logging.getLogger(__name__)

TORN_SUFFIX = ".torn"
_RECORD_START = b'{"op_code":'  # how Optuna writes every record (json.dumps, compact separators)


class JournalWriteError(DroptuneError, OSError):
    """An append to a journal file failed (e.g. the disk is full); the file is as it was before."""


class SafeJournalFileBackend(JournalFileBackend):
    """A journal file whose torn last line is set aside instead of corrupting what follows.

    Args:
        file_path: The journal file (created if missing, as Optuna's backend does).
    """

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        if _torn_tail(Path(file_path)):  # cheap check first: most opens find a clean file
            with get_lock_file(self._lock):
                self._set_aside_torn_tail()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` as one write; on failure, leave the file exactly as it was."""
        text = "\n".join(json.dumps(entry, separators=(",", ":")) for entry in logs) + "\n"
        with get_lock_file(self._lock):
            self._set_aside_torn_tail()  # a writer killed since this process opened the file
            fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                try:
                    _write_all(fd, text.encode("utf-8"))
                    os.fsync(fd)
                except OSError as error:
                    os.ftruncate(fd, size)  # frees space: works on a full disk
                    raise JournalWriteError(
                        f"could not write to the journal {self._file_path}: {error.strerror or error}. "
                        "The journal is as it was before this write (finished trials are kept); "
                        "free some space and run the same command to resume."
                    ) from error
            finally:
                os.close(fd)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        """Optuna's read, repairing a torn line with records glued after it (then reading on)."""
        done = 0
        for _ in range(1000):  # each repair removes one damaged line: bounded by the file
            try:
                for entry in super().read_logs(log_number_from + done):
                    done += 1
                    yield entry
                return
            except ValueError:  # json.JSONDecodeError too: a damaged line followed by others
                with get_lock_file(self._lock):
                    if not self._repair_line(log_number_from + done):
                        raise
        raise JournalWriteError(f"the journal {self._file_path} has too many damaged lines to repair")

    def _set_aside_torn_tail(self) -> None:
        """Move an unterminated last line to the ``.torn`` file (call under the lock)."""
        path = Path(self._file_path)
        tail = _torn_tail(path)
        if not tail:
            return
        try:
            _set_aside(path, tail)  # first kept, then cut: a failure in between loses nothing
            with open(path, "r+b") as handle:
                _truncate(handle, handle.seek(0, os.SEEK_END) - len(tail))
        except OSError as error:
            raise JournalWriteError(
                f"the journal {path} ends with a torn record, which could not be set aside in {path}{TORN_SUFFIX}: "
                f"{error.strerror or error}. Nothing was changed; free some space and run the same command again."
            ) from error
        log.warning(
            "the journal %s ended with a torn record (%d bytes, from a full disk or a killed write): "
            "set aside in %s%s; the finished trials are kept and the study resumes",
            path, len(tail), path, TORN_SUFFIX,
        )

    def _repair_line(self, log_number: int) -> bool:
        """Repair damaged line ``log_number`` (call under the lock); False if it is not damaged."""
        path = Path(self._file_path)
        lines = path.read_bytes().splitlines(keepends=True)
        if log_number >= len(lines):
            return False
        line = lines[log_number]
        if line.endswith(b"\n") and _parses(line):
            return False  # the error was elsewhere (or another process repaired it meanwhile)
        start = line.rfind(_RECORD_START)
        glued = line[start:] if start > 0 and line.endswith(b"\n") and _parses(line[start:]) else b""
        torn = line[: len(line) - len(glued)]
        _set_aside(path, torn if torn.endswith(b"\n") else torn + b"\n")
        lines[log_number] = glued
        tmp = path.with_name(path.name + ".repair")
        tmp.write_bytes(b"".join(lines))
        os.replace(tmp, path)
        self._log_number_offset = {k: v for k, v in self._log_number_offset.items() if k <= log_number}
        log.warning(
            "the journal %s held a torn record followed by others (line %d): torn bytes set aside in %s%s%s",
            path, log_number + 1, path, TORN_SUFFIX, ", the record after them kept" if glued else "",
        )
        return True


def _torn_tail(path: Path) -> bytes:
    """The bytes after the last newline of ``path`` (empty when the file ends cleanly)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return b""
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return b""
        block = 1 << 16
        end = size
        while True:
            start = max(0, end - block)
            handle.seek(start)
            chunk = handle.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                start += newline + 1
                break
            if start == 0:
                break
            end = start
        handle.seek(start)
        return handle.read()


def _set_aside(path: Path, data: bytes) -> None:
    """Append ``data`` (one torn record, newline-terminated) to ``<path>.torn``."""
    with open(f"{path}{TORN_SUFFIX}", "ab") as handle:
        handle.write(data if data.endswith(b"\n") else data + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _truncate(handle: Any, size: int) -> None:
    handle.truncate(size)
    handle.flush()
    os.fsync(handle.fileno())


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True
