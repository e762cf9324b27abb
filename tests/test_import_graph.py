"""No import cycle between droptune's modules, lazy imports included: each module depends one way."""

from __future__ import annotations

import ast
from pathlib import Path

import droptune

ROOT = Path(droptune.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """droptune modules that ``path`` imports, lazily (inside functions) or not; not type-only ones."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    type_only = {id(n) for b in tree.body if isinstance(b, ast.If) and "TYPE_CHECKING" in ast.unparse(b.test)
                 for n in ast.walk(b)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("droptune"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("droptune")]
        found |= {n for n in names if n in known}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_module_imports_itself_back_through_others():
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {name: _imports(path, set(files)) - {name} for name, path in files.items()}
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".") and files[name].name == "__init__.py")}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_no_subpackage_imports_another_that_imports_it_back():
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}

    def package(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in packages else None

    graph: dict[str, set[str]] = {name: set() for name in packages}
    for name, path in files.items():
        if (own := package(name)) is not None:
            graph[own] |= {p for m in _imports(path, set(files)) if (p := package(m)) not in (None, own)}
    assert _cycle(graph) is None, f"subpackage cycle: {' -> '.join(_cycle(graph) or [])}"


def test_the_engine_imports_no_analysis():
    """``droptune.tuning`` (every module, lazy imports included) imports nothing of report/recommend.

    The engine runs trials and records them; which trial is best lives in ``droptune.record``,
    and the report runs from a study-end hook that ``droptune.api`` registers.
    """
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    engine = {name: path for name, path in files.items() if name == "droptune.tuning" or name.startswith("droptune.tuning.")}
    assert "droptune.tuning.executors._packed" in engine  # the walk sees the executors too
    analysis = ("droptune.report", "droptune.recommend")
    found = {
        name: sorted(m for m in _imports(path, set(files)) if m in analysis or m.startswith(tuple(a + "." for a in analysis)))
        for name, path in engine.items()
    }
    assert {name: mods for name, mods in found.items() if mods} == {}
