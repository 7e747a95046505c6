"""Every ``__all__`` says what its module exports: each listed name exists, each public name is listed.

Why: ``__all__`` is the module's public interface (what ``from m import *``,
the docs and a reader take as the API). A name added without listing it, or
listed after it was renamed away, makes the list lie. Read from the source
(AST), so nothing is imported: top-level public functions and classes
and, in a package's ``__init__``, the names it re-exports from its own
submodules, must be listed (a constant may be, or stay module-level). Private (``_x``) names, the module
logger and ``TYPE_CHECKING``-only imports are not exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dcc_capacity"
NOT_EXPORTS = {"log", "logger"}


def _declared_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    return None


def _top_level(tree: ast.Module, package: str | None) -> tuple[set[str], set[str]]:
    """(public names defined here, every name bound here: defined or imported) at module level."""
    defined: set[str] = set()
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:  # constants: listed or not, as the module chooses
                bound |= {e.id for e in (t.elts if isinstance(t, ast.Tuple) else [t]) if isinstance(e, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            bound.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names = {a.asname or a.name for a in node.names}
            bound |= names
            if package and (node.level > 0 or (node.module or "").startswith(package + ".")):
                defined |= names  # a package re-exports what it imports from its own submodules
        elif isinstance(node, ast.Import):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    public = {n for n in defined if not n.startswith("_") and n not in NOT_EXPORTS}
    return public, bound | defined


def _modules() -> list:
    return [pytest.param(p, id=str(p.relative_to(SRC))) for p in sorted(SRC.rglob("*.py")) if "_data" not in p.parts]


@pytest.mark.parametrize("path", _modules())
def test_all_matches_what_the_module_exports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    declared = _declared_all(tree)
    is_package = path.name == "__init__.py"
    dotted = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    package = dotted.removesuffix(".__init__") if is_package else None
    public, bound = _top_level(tree, package)
    if declared is None:
        assert not (is_package and public), f"a package that exports {sorted(public)} declares __all__"
        return
    assert len(declared) == len(set(declared)), "__all__ lists a name twice"
    assert not set(declared) - bound, f"__all__ lists names the module does not bind: {set(declared) - bound}"
    assert not public - set(declared), f"public names missing from __all__: {sorted(public - set(declared))}"
