"""The scripts under ``benchmarks/`` loaded as modules, for their tests."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@contextlib.contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """``benchmarks/<name>.py`` as module ``name``; everything it set up is undone after.

    The folder goes on ``sys.path`` (the scripts import each other by name, as scripts do) and
    the module into ``sys.modules`` (the workers they spawn unpickle its functions by name).
    """
    added = str(BENCHMARKS) not in sys.path
    if added:
        sys.path.insert(0, str(BENCHMARKS))
    before = set(sys.modules)
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for loaded in set(sys.modules) - before:  # the script and the other scripts it imported
            if Path(getattr(sys.modules[loaded], "__file__", None) or "/").parent == BENCHMARKS:
                sys.modules.pop(loaded)
        if added:
            sys.path.remove(str(BENCHMARKS))
