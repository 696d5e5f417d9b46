"""The import rules of the design, checked on the source: no two apps import each other
(directly or round a longer loop), and the pure packages stay free of Django."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "releaseboard"


def _imports() -> dict[str, set[str]]:
    """Which top-level parts of releaseboard each part imports (migrations left out: they
    name other apps' models by design)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if "migrations" in relative.parts:
            continue
        part = relative.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] == "releaseboard" and len(bits) > 1 and bits[1] != part:
                    found.setdefault(part, set()).add(bits[1])
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(graph.get(node, ())):
            if target == path[0]:
                cycles.append([*path, target])
            elif target not in path and target > path[0]:
                visit(target, [*path, target])

    for start in sorted(graph):
        visit(start, [start])
    return cycles


def test_no_two_parts_of_releaseboard_import_each_other() -> None:
    assert _cycles(_imports()) == []


@pytest.mark.parametrize("pure", ["branching", "vcs", "sandbox"])
def test_the_pure_packages_import_no_django(pure: str) -> None:
    for path in (PACKAGE / pure).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("django", "releaseboard.")) or node.module.startswith(
                    f"releaseboard.{pure}"
                ), f"{path}: imports {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("django"), f"{path}: imports {alias.name}"


def test_the_cycle_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
