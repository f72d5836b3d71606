"""The kit's layout: imports only go down the layers, and no module imports itself back.

Every import of every module under kit/ is read with :mod:`ast` (module level, inside functions
and under ``TYPE_CHECKING`` alike: a lazy import is still a dependency) and checked against the
layer order of the README's "Layout" section:

    foundation (errors, schema, net, timeutil, stats, tables, the C extensions)
    -> sources -> promql -> analyses -> findings -> charts -> report -> cli
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

KIT = Path(__file__).resolve().parent.parent / "kit"

#: layer of a module: the first prefix that matches (longest first)
LAYERS: list[tuple[str, int]] = [
    ("kit.errors", 0),
    ("kit.schema", 0),
    ("kit.net", 0),
    ("kit.timeutil", 0),
    ("kit.stats", 0),
    ("kit.tables", 0),
    ("kit._fastlog", 0),
    ("kit._fastcap", 0),
    ("kit.sources", 1),
    ("kit.promql", 2),
    ("kit.analyses", 3),
    ("kit.findings", 4),
    ("kit.charts", 5),
    ("kit.report", 6),
    ("kit.cli", 7),
    ("kit.__main__", 7),
]
LAYER_NAMES = ["foundation", "sources", "promql", "analyses", "findings", "charts", "report", "cli"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(KIT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(KIT.rglob("*.py"))}


def layer(module: str) -> int:
    if module == "kit":
        return 0  # the root only: `from kit import __version__` (its lazy names are strings)
    for prefix, n in sorted(LAYERS, key=lambda x: -len(x[0])):
        if module == prefix or module.startswith(prefix + "."):
            return n
    raise AssertionError(f"{module}: in no layer; add it to LAYERS and the README")


def resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The kit modules an import statement in ``module`` names."""
    out: list[str] = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = module.split(".")
            is_pkg = MODULES[module].name == "__init__.py"
            pkg = pkg if is_pkg else pkg[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, base] if base else pkg)
        for a in node.names:
            full = f"{base}.{a.name}"
            out.append(
                full if full in MODULES or full in {"kit._fastlog", "kit._fastcap"} else base
            )
    return [m for m in out if m == "kit" or m.startswith("kit.")]


@functools.cache
def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps.update(d for d in resolve(mod, node) if d != mod)
        graph[mod] = deps
    return graph


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 30
    for mod in MODULES:
        layer(mod)


def test_imports_only_go_down_the_layers() -> None:
    wrong = [
        f"{mod} ({LAYER_NAMES[layer(mod)]}) imports {dep} ({LAYER_NAMES[layer(dep)]})"
        for mod, deps in edges().items()
        if mod != "kit"
        for dep in sorted(deps)
        if layer(dep) > layer(mod)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle() -> None:
    graph = {m: {d for d in deps if d in MODULES and d != "kit"} for m, deps in edges().items()}
    # a package's __init__ re-exporting its own modules is not a cycle of concepts
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d] if d in stack else [m, d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_imported_across_packages() -> None:
    """``from kit.x import _private`` only inside the package that owns it (grafana used to take
    8 private names from prometheus)."""
    wrong = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if not node.module.startswith("kit."):
                continue
            owner = node.module.rsplit(".", 1)[0]
            for a in node.names:
                private = a.name.startswith("_") and not a.name.startswith("__")
                if (
                    private
                    and f"{node.module}.{a.name}" not in MODULES
                    and not (mod == owner or mod.startswith(owner + "."))
                ):
                    wrong.append(f"{mod}: from {node.module} import {a.name}")
    assert not wrong, "\n".join(wrong)


def test_layers_are_attributes_of_kit() -> None:
    """``import kit; kit.promql.evaluate(...)`` (the docstring's promise; an AttributeError before)."""
    import kit

    assert callable(kit.promql.evaluate)
    for name in ("sources", "analyses", "findings", "charts", "report", "net", "timeutil"):
        assert getattr(kit, name).__name__ == f"kit.{name}"
    with pytest.raises(AttributeError):
        _ = kit.no_such_thing
