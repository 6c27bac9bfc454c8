"""The package's shape: no import circles, imports that run one way down the layers of
docs/how-it-works.md, few modules at the top, none too long, and every room saying
what it is.

Imports are read from the source (every ``import`` statement, at module level or
inside a function: a lazy import is still a dependency), so the checks cost no import.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnprof"

# Rooms and top-level modules, bottom first. A module may import its own room and
# anything on a lower layer, never a room on its own layer or above.
LAYERS = [
    {"rundir", "_version"},             # the run's own model
    {"instrument", "analyses", "capture"},
    {"monitors", "renderers"},
    {"summary"},
    {"run"},                            # the public Run: the run directory + findings
    {"runner", "progress"},
    {"session"},
    {"check", "distributed"},
    {"sweep"},
    {"cli"},
    {"__init__", "__main__"},           # the package's face
]
MAX_TOP_LEVEL = 8
MAX_LINES = 450


def modules(root: Path) -> dict:
    """{dotted name: (path, is package)} of every module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(root: Path) -> dict:
    """{module: set of the package's modules it imports}. ``from P import n`` counts as
    importing ``P.n`` when that is a module, else ``P`` itself."""
    mods = modules(root)
    graph = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src
                           for a in node.names]
            else:
                continue
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def circles(graph: dict) -> list:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    r = room(module)
    for i, names in enumerate(LAYERS):
        if r in names:
            return i
    raise AssertionError(f"{module}: room {r!r} is on no layer (add it to LAYERS and to "
                         "docs/how-it-works.md)")


GRAPH = import_graph(PACKAGE)


def test_no_import_circles():
    found = circles(GRAPH)
    assert not found, "import circles:\n" + "\n".join(
        "  " + " -> ".join(g) + "\n" + "\n".join(
            f"    {m} imports {sorted(t for t in GRAPH[m] if t in g)}" for m in g)
        for g in found)


def test_imports_run_down_the_layers():
    upward = sorted(f"{m} ({room(m)}) imports {t} ({room(t)})"
                    for m, targets in GRAPH.items() for t in targets
                    if room(t) != room(m) and layer(t) >= layer(m))
    assert not upward, "imports against the layers:\n  " + "\n  ".join(upward)


def test_nothing_imports_the_command_line():
    users = sorted(m for m, targets in GRAPH.items()
                   if room(m) != "cli" and any(room(t) == "cli" for t in targets))
    assert users == ["nnprof.__main__"], users


def test_few_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


def test_no_module_too_long():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_every_room_says_what_it_is_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 20, f"{init.parent.name}/__init__.py: say what the room is"
        assert "import" in doc, f"{init.parent.name}/__init__.py: say what the room imports"


# -- the checks can fail ----------------------------------------------------------------
def _package(tmp_path, files: dict) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_planted_circle_is_found(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from .room.c import g\n",  # a lazy import counts
        "room/__init__.py": "",
        "room/c.py": "from ..a import x\n",
        "d.py": "from .a import x\n",                          # not in the circle
    })
    assert circles(import_graph(root)) == [["pkg.a", "pkg.b", "pkg.room.c"]]


def test_an_acyclic_package_has_none(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "from .a import x\n",
        "a.py": "import os\nfrom .room import c\n",
        "room/__init__.py": "",
        "room/c.py": "x = 1\n",
    })
    graph = import_graph(root)
    assert graph["pkg"] == {"pkg.a"} and graph["pkg.a"] == {"pkg.room.c"}
    assert circles(graph) == []


@pytest.mark.parametrize("module,expected", [("nnprof.cli.profile", "cli"),
                                             ("nnprof.summary", "summary"),
                                             ("nnprof", "__init__")])
def test_rooms_are_named_by_their_folder(module, expected):
    assert room(module) == expected
