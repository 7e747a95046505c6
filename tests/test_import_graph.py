"""The package's shape: no import cycles, no module importing another's private names, small modules.

Read from the source with :mod:`ast` (nothing is imported, so the test takes
milliseconds). Every import counts, also one deferred into a function (a
deferred import that closes a cycle still ties the two modules together),
except those under ``if TYPE_CHECKING:`` (annotations only).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "dcc_capacity"

MAX_LINES = 400
"""A module with one job fits in this many lines; past it, split it by job."""
LONG_ALLOWED = {"dcc_capacity.orchestrate.run"}  # being rewritten (issue 19); remove with that work

PRIVATE_ALLOWED = {
    # Replaced by the Locust-stats helper's work (issue 19); remove these lines with it.
    ("dcc_capacity.webui.live", "dcc_capacity.load.shapes._percentile"),
    ("dcc_capacity.load.controlled_shape", "dcc_capacity.load.shapes._percentile"),
}


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in (SRC / PKG).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


class _Imports(ast.NodeVisitor):
    """(imported module or module.name, line) for every import outside ``if TYPE_CHECKING:``."""

    def __init__(self, module: str, is_pkg: bool) -> None:
        self.module, self.is_pkg = module, is_pkg
        self.found: list[tuple[str, int]] = []

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == PKG]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.module.split(".") if self.is_pkg else self.module.split(".")[:-1]
            here = here[: len(here) - node.level + 1]
            base = ".".join([*here, base] if base else here)
        if base.split(".")[0] == PKG:
            self.found += [(f"{base}.{a.name}", node.lineno) for a in node.names]


def _imports() -> dict[str, list[tuple[str, int]]]:
    out = {}
    for module, (path, is_pkg) in _modules().items():
        visitor = _Imports(module, is_pkg)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        out[module] = visitor.found
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for module, found in _imports().items():
        deps = set()
        for name, _ in found:
            target = name if name in mods else name.rpartition(".")[0]  # "pkg.mod.func" -> "pkg.mod"
            if target in mods and target != module:
                deps.add(target)
        graph[module] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package() -> None:
    graph = _graph()
    assert len(graph) > 100  # the walk saw the package
    cycles = _cycles(graph)
    detail = [" <-> ".join(c) for c in cycles]
    assert not cycles, f"import cycles: {detail}"


def test_no_module_imports_another_modules_private_names() -> None:
    mods = _modules()
    bad = []
    for module, found in _imports().items():
        for name, line in found:
            owner, _, attr = name.rpartition(".")
            if name in mods or not attr.startswith("_") or attr.startswith("__") or owner == module:
                continue
            if (module, name) not in PRIVATE_ALLOWED:
                bad.append(f"{module}:{line} imports {name}")
    assert not bad, bad


def test_no_module_over_the_line_limit() -> None:
    long = {m: n for m, (path, _) in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES and m not in LONG_ALLOWED}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


_ABOVE_SPEC = ("load", "orchestrate", "report", "webui", "cli", "phase", "telemetry", "emulator")
LAYERS: dict[str, tuple[str, ...]] = {
    # module or package -> what it must not import (docs/design.md "Layout"): the spec model under the test
    # types, the test types under the spec's surfaces and resolution, all of them under the load code, the
    # run and the report, which hand a plugin what it needs from them.
    "spec.model": ("spec.options", "spec.resolve", "spec.surfaces", "testtypes", *_ABOVE_SPEC),
    "spec.rates": ("spec", "testtypes", *_ABOVE_SPEC),
    "testtypes": ("spec.options", "spec.resolve", "spec.surfaces", *_ABOVE_SPEC),
    "spec": _ABOVE_SPEC,
}


def test_the_spec_and_the_test_types_import_one_way() -> None:
    graph = _graph()
    bad = []
    for low, banned in LAYERS.items():
        here = f"{PKG}.{low}"
        for module in (m for m in graph if m == here or m.startswith(here + ".")):
            for dep in graph[module]:
                rel = dep[len(PKG) + 1:]
                if any(rel == b or rel.startswith(b + ".") for b in banned) and not dep.startswith(here):
                    bad.append(f"{module} imports {dep}")
    assert not bad, bad
