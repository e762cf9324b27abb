"""Files droptune reads and writes: text that must be UTF-8, writes that are all or nothing.

A study file or a rates file that is binary, or in another encoding, is one readable
:class:`~droptune.exceptions.ConfigError`, not a ``UnicodeDecodeError``. Files droptune
writes (exports) are written to a temporary file beside the target, flushed to disk and
renamed over it (``os.replace``), so a full disk or a crash never leaves a truncated file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import yaml

from droptune.exceptions import ConfigError

__all__ = ["atomic_write_text", "os_error_reason", "read_text_file", "safe_load_unique"]

# How much of a file's start is looked at for a NUL byte, the sign of a binary file.
_SNIFF_BYTES = 8192


def read_text_file(path: str | os.PathLike[str], *, what: str) -> str:
    """Read a UTF-8 text file, refusing binary files and other encodings with a clear message.

    Args:
        path: The file.
        what: What the file is, for messages (``"study file"``, ``"rates file"``).

    Returns:
        The file's text (a leading UTF-8 byte-order mark dropped).

    Raises:
        ConfigError: If the file cannot be read, is binary, or is not UTF-8.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> _ = path.write_bytes(b"\\x89PNG\\r\\n\\x1a\\n\\x00\\x00")
        >>> read_text_file(path, what="study file")
        Traceback (most recent call last):
        ...
        droptune.exceptions.ConfigError: study file ... is a binary file (a NUL byte at offset 8), not UTF-8 text: ...
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}.") from None
    nul = data.find(b"\x00", 0, _SNIFF_BYTES)
    if nul >= 0:
        raise ConfigError(
            f"{what} {path} is a binary file (a NUL byte at offset {nul}), not UTF-8 text: "
            f"pass the YAML or JSON {what} itself."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {path} is not UTF-8 text: byte 0x{data[err.start]:02x} on line {line} "
            f"(offset {err.start}) cannot be decoded. Save the file as UTF-8."
        ) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key that appears twice in one mapping.

    Plain YAML keeps the last of two equal keys: a study file with two ``search:`` blocks
    would silently lose the first. Merge keys (``<<: *base``) may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base loader words that error
                continue
            if first != key_node.start_mark.line + 1:
                raise _DuplicateKey(key, first, key_node.start_mark.line + 1)
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(key, first, second)
        self.key, self.first, self.second = key, first, second


def safe_load_unique(text: str, *, source: str) -> Any:
    """Parse YAML with the safe loader; a key given twice in one mapping is an error.

    Args:
        text: The YAML text.
        source: Where it came from (a path), for messages.

    Raises:
        ConfigError: If the text is not valid YAML or repeats a key.

    Example:
        >>> safe_load_unique("search: {n_trials: 2}\\nsearch: {n_trials: 9}\\n", source="study.yaml")
        Traceback (most recent call last):
        ...
        droptune.exceptions.ConfigError: study.yaml: key 'search' appears twice in one mapping (lines 1 and 2); ...
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{source}: key {dup.key!r} appears twice in one mapping (lines {dup.first} and {dup.second}); "
            "YAML would silently keep only the last. Merge them into one."
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from None


def atomic_write_text(path: str | os.PathLike[str], text: str, *, what: str = "file") -> Path:
    """Write ``text`` to ``path`` all at once: a temporary file beside it, then a rename.

    A full disk, a missing permission or a crash leaves ``path`` as it was (absent, or the
    old content), never a truncated file. Missing parent folders are created. The file gets
    the permissions ``open(path, "w")`` would give it: a replaced file keeps its own, a new
    one follows the umask.

    Args:
        path: The target file.
        text: Its new content (written as UTF-8).
        what: What the file is, for messages.

    Returns:
        The path written.

    Raises:
        ConfigError: Naming the path, what went wrong and the fix.

    Example:
        >>> import pathlib, tempfile
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out" / "best.yaml"
        >>> atomic_write_text(target, "rates: {}\\n").read_text()
        'rates: {}\\n'
    """
    path = Path(path)
    try:
        _mkdir(path.parent, what)
        if path.is_dir():
            raise ConfigError(f"cannot write {what} {path}: it is a folder. Give a file name, e.g. {path}/best.yaml.")
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise ConfigError(f"cannot write {what} {path}: {os_error_reason(err)}") from None
    try:
        # mkstemp creates the file private (0600); the file replaced, or a new one, should have
        # the mode that open(path, "w") would have left it with.
        os.fchmod(fd, _mode_of(path))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigError(f"cannot write {what} {path}: {os_error_reason(err)}") from None
    return path


def _mode_of(path: Path) -> int:
    """The permission bits ``open(path, "w")`` leaves: the existing file's, else 0666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:  # Linux: changing it, even briefly, would race with other threads creating files
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkdir(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a parent is a file: name it, instead of the bare "File exists"
        blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder)
        raise ConfigError(
            f"cannot create folder {folder} for the {what}: {blocker} is a file, not a folder. "
            "Choose another path, or move that file away."
        ) from None
    except NotADirectoryError:
        blocker = next((p for p in folder.parents if p.exists() and not p.is_dir()), folder)
        raise ConfigError(
            f"cannot create folder {folder} for the {what}: {blocker} is a file, not a folder. "
            "Choose another path, or move that file away."
        ) from None


def os_error_reason(err: OSError) -> str:
    """An OSError as a reason and a fix."""
    fixes = {
        errno.ENOSPC: "the disk is full; free some space or choose another folder.",
        errno.EDQUOT: "the disk quota is exceeded; free some space or choose another folder.",
        errno.EROFS: "the file system is read-only; choose a writable folder.",
        errno.EACCES: "permission denied; choose a folder you can write to.",
        errno.EPERM: "operation not permitted; choose a folder you can write to.",
    }
    return fixes.get(err.errno or 0, f"{err.strerror or err}.")
