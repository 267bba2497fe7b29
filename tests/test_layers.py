"""The package's layering: no import cycle (function-level imports included; only `if TYPE_CHECKING:` blocks are
left out, since they never run), and no module named after a function it defines (`import vram.x` must give the
module, never shadow it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "vram"


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """vram modules `name` imports anywhere (module level or inside functions), as the import statements name
    them; a module importing its own package (`from . import x`) depends on x, not on its parent."""
    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for n in node.orelse:
                visit(n)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for cand in (base, *(f"{base}.{a.name}" for a in node.names)):
                if cand in mods and cand != name and not name.startswith(cand + "."):
                    found.add(cand)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in mods and a.name != name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_the_package() -> None:
    mods = _modules()
    assert len(mods) > 60
    graph = {name: _imports(name, path, mods) for name, path in mods.items()}
    assert graph["vram.inference"] >= {"vram.engines", "vram.resolver"}  # the finder reads the real imports
    assert _cycles(graph) == []


def test_no_module_is_named_after_a_function_it_defines() -> None:
    clashes = []
    for name, path in _modules().items():
        last = name.rsplit(".", 1)[-1]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == last for n in tree.body):
            clashes.append(name)
    assert clashes == []


@pytest.mark.parametrize(
    ("module", "function"),
    [
        ("vram.inference", "estimate"),
        ("vram.fitting", "fit"),
        ("vram.diagnosis", "explain"),
        ("vram.fleet", "plan"),
        ("vram.measurement", "measure"),
    ],
)
def test_importing_a_module_gives_the_module(module: str, function: str) -> None:
    import importlib
    import types

    mod = importlib.import_module(module)
    assert isinstance(mod, types.ModuleType) and callable(getattr(mod, function))
    import vram

    assert callable(vram.estimate) and not isinstance(vram.estimate, types.ModuleType)
