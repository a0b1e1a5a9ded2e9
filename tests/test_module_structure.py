"""The core's shape, read from the source with ``ast`` (no Spark, no Ray).

Every import of a sibling module counts, also one inside a function: a lazy
import hides a cycle from Python's import system, not from a reader, who
must still understand both modules to understand either. Imports under
``if TYPE_CHECKING:`` do not count: they name a type for the annotations and
the type checker, and no code of one module runs the other's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("spark_ray", "sql_ext")
MAX_LINES = 450  # spark_ray's modules only (sql_ext is not held to it yet)


def module_files(package: str) -> dict[str, Path]:
    """Every module of ``package`` (subpackages included) by dotted name; a package by its own name."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _package_of(module: str, path: Path) -> str:
    """The package relative imports in ``module`` start from."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def run_time_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in ``tree``, at any depth, but those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` imports anywhere in its source.

    ``from . import x`` names module ``x`` when there is one, else the package
    itself; ``from .x import y`` names ``x``, and ``x.y`` too when ``y`` is a
    submodule. A parent package is not counted for importing its child.
    """
    found: set[str] = set()
    for node in run_time_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module, path)
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if target in known and (node.module or len(submodules) < len(node.names)):
                found.add(target)
    found.discard(module)
    return found


def import_graph(package: str) -> dict[str, set[str]]:
    files = module_files(package)
    known = set(files)
    return {module: imported_modules(module, path, known) for module, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (its first module repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        path.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, f"{package} has an import cycle: {' -> '.join(cycle or [])}"


def test_no_spark_ray_module_is_over_the_line_limit():
    long = {
        str(path.relative_to(ROOT)): count
        for path in module_files("spark_ray").values()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"spark_ray modules over {MAX_LINES} lines: {long}"


def test_spark_ray_never_imports_sql_ext():
    importers = []
    for module, path in module_files("spark_ray").items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(name == "sql_ext" or name.startswith("sql_ext.") for name in names):
                importers.append(f"{module} (line {node.lineno})")
    assert not importers, f"spark_ray imports sql_ext in: {', '.join(importers)}"


def test_the_graph_reader_sees_every_kind_of_import(tmp_path):
    """The reader itself: lazy, relative, absolute and ``from . import module`` imports all count."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from . import b\n")
    (package / "b.py").write_text("import pkg.c\n")
    (package / "c.py").write_text("from .sub import d\n")
    (package / "sub" / "d.py").write_text("from ..a import f\nfrom .. import VERSION\n")
    (package / "e.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n")
    files = {
        "pkg": package / "__init__.py",
        "pkg.sub": package / "sub" / "__init__.py",
        "pkg.a": package / "a.py",
        "pkg.b": package / "b.py",
        "pkg.c": package / "c.py",
        "pkg.sub.d": package / "sub" / "d.py",
        "pkg.e": package / "e.py",
    }
    graph = {name: imported_modules(name, path, set(files)) for name, path in files.items()}
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.sub", "pkg.sub.d"}
    assert graph["pkg.sub.d"] == {"pkg.a", "pkg"}
    assert graph["pkg.e"] == set()
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.sub.d", "pkg.a"]


def _mapped_names() -> dict[str, set[str]]:
    """The file names ARCHITECTURE.md gives in backquotes, by the package section they are in."""
    import re

    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    found: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for section in sections:
        package = section.split("/", 1)[0].strip()
        if package in found:
            names = re.findall(r"`([\w/.]+?(?:\.py|/))`", section)
            names = [name.removeprefix(f"{package}/") for name in names]
            found[package] |= {name for name in names if "/" not in name.rstrip("/")}  # not other folders' files
    return found


def _needs_a_line(package: str, path: Path) -> str | None:
    """How the map must name this file: ``x.py``, or ``sub/`` for a module in a subpackage; None for a
    package's ``__init__`` (but the library's own, which holds the public names)."""
    relative = path.relative_to(ROOT / package)
    if len(relative.parts) > 1:
        return f"{relative.parts[0]}/"
    if relative.name == "__init__.py" and package != "spark_ray":
        return None
    return relative.name


def test_the_module_map_names_every_module_and_only_modules_that_exist():
    mapped = _mapped_names()
    for package in PACKAGES:
        needed = {line for path in module_files(package).values() if (line := _needs_a_line(package, path))}
        missing = needed - mapped[package]
        stale = {name for name in mapped[package] - needed if not (ROOT / package / name).exists()}
        assert not missing, f"ARCHITECTURE.md's {package}/ section does not name: {sorted(missing)}"
        assert not stale, f"ARCHITECTURE.md's {package}/ section names what does not exist: {sorted(stale)}"
