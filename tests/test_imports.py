"""The shape of src/digest: no import circle between its modules, and no private name (a leading
underscore) imported from another module. Read from the source with `ast`, so lazy imports inside
functions count as much as those at the top."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import PROJECT

PACKAGE = PROJECT / "src" / "digest"


def imports_of(path: Path) -> list[tuple[str, str, int]]:
    """(imported digest module, name or "", line) for every import in one module of the package."""
    found: list[tuple[str, str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import a, b
                found += [(node.module.split(".")[0], alias.name, node.lineno) for alias in node.names]
            elif node.level == 1:  # from . import x, y
                found += [(alias.name, "", node.lineno) for alias in node.names]
            elif node.module and node.module.split(".")[0] == "digest":
                rest = node.module.split(".")[1:]
                if rest:
                    found += [(rest[0], alias.name, node.lineno) for alias in node.names]
                else:
                    found += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "digest" and len(parts) > 1:
                    found.append((parts[1], "", node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    return {
        path.stem: {module for module, _, _ in imports_of(path) if module in modules and module != path.stem}
        for path in sorted(PACKAGE.glob("*.py"))
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One path for each circle found by a depth-first walk."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for other in sorted(edges.get(node, ())):
            if state.get(other) == 1:
                found.append([*path[path.index(other) :], other])
            elif other not in state:
                visit(other, [*path, other])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_has_no_import_circle() -> None:
    assert cycles(graph()) == []


def test_the_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def _private(name: str) -> bool:
    """A leading underscore, but not a dunder such as the package's `__version__`."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_is_imported_across_modules() -> None:
    private = [
        f"{path.name}:{line}: {module}.{name}"
        for path in sorted(PACKAGE.glob("*.py"))
        for module, name, line in imports_of(path)
        if _private(name or module)
    ]
    assert private == []


def test_the_check_reads_lazy_and_absolute_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from .jobs import _build\ndef f():\n    from . import weekly\n    from digest.state import State\n"
    )
    assert imports_of(module) == [("jobs", "_build", 1), ("weekly", "", 3), ("state", "State", 4)]
