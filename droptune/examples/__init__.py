"""The example study files, shipped inside the package so that an installed droptune runs
without the repository (``droptune init EXAMPLE`` writes one into the current folder).

These YAML files are what an installed droptune has; the repository's top-level ``studies/``
folder holds byte-identical copies, where ``make demo`` and the README run them from.
``tests/examples`` fails, naming the file and the copy to make, as soon as the two differ.

Example:
    >>> "digits_cnn" in example_names()
    True
    >>> [line for line in example_text("digits-mlp").splitlines() if line.startswith("name:")][0]
    'name: digits-mlp'
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from droptune.exceptions import ConfigError

__all__ = ["DEFAULT_EXAMPLE", "example_names", "example_summary", "example_text", "write_example"]

DEFAULT_EXAMPLE = "digits_cnn"


def example_names() -> list[str]:
    """Names of the shipped examples (file stems such as ``digits_cnn``), sorted."""
    files = resources.files(__name__).iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def example_text(name: str) -> str:
    """The YAML text of example ``name`` (``digits_cnn``, ``digits-cnn`` or ``digits_cnn.yaml``).

    Raises:
        ConfigError: If there is no such example (the message lists them).
    """
    stem = _stem(name)
    if stem not in example_names():
        raise ConfigError(f"no example study named {name!r}; the examples are: {', '.join(example_names())}.")
    return resources.files(__name__).joinpath(f"{stem}.yaml").read_text(encoding="utf-8")


def example_summary(name: str) -> str:
    """The example's first comment line: what model, what data, which sites."""
    first = example_text(name).splitlines()[0]
    return first.lstrip("# ").strip() if first.startswith("#") else ""


def write_example(name: str, path: str | os.PathLike[str] | None = None, *, force: bool = False) -> Path:
    """Write example ``name`` to ``path`` (default ``<name>.yaml`` in the current folder).

    ``path`` may be a folder (existing, or written with a trailing ``/``), which gets
    ``<name>.yaml``. An existing file is kept unless
    ``force`` (a user's edited study file is never overwritten by surprise).

    Returns:
        The file written.

    Raises:
        ConfigError: If the example does not exist, the file exists (and not ``force``) or
            cannot be written.
    """
    text = example_text(name)
    target = Path(path) if path is not None else Path(f"{_stem(name)}.yaml")
    if target.is_dir() or str(path).endswith(("/", os.sep)):
        target = target / f"{_stem(name)}.yaml"
    if target.exists() and not force:
        raise ConfigError(f"{target} exists already; keep it, choose another path (-o), or pass --force to replace it.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write {target}: {err.strerror or err}.") from None
    return target


def _stem(name: str) -> str:
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    return stem.replace("-", "_")
