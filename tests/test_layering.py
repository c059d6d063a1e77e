"""Dependencies between the top-level packages point one way (docs/ARCHITECTURE.md):
starter → service → runtime → activities → workflows, and worker.py → runtime; nothing
imports worker.py. The sources are parsed, not imported, so a module that points back up
fails here however it is reached."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first: each layer may import itself and the layers before it, never one after.
LAYERS = ("workflows", "activities", "runtime", "service", "starter")
# Tests, benchmarks and scripts stand on top of everything (but the worker process); the
# testing kit, which users' tests import too, stands on the layers alone.
TOOLS = ("tests", "bench", "scripts")
ALLOWED: dict[str, frozenset[str]] = {
    **{layer: frozenset(LAYERS[: i + 1]) for i, layer in enumerate(LAYERS)},
    "worker": frozenset({"worker", "runtime"}),
    "testkit": frozenset({*LAYERS, "testkit"}),
    **{tool: frozenset({*LAYERS, *TOOLS, "testkit"}) for tool in TOOLS},
}


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """Every first-party top-level name the source imports, with its line; a relative
    import stays in ``package``. Imports inside functions and ``TYPE_CHECKING`` count."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.partition(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            top = package if node.level else (node.module or "").partition(".")[0]
            found.append((node.lineno, top))
    return [(line, top) for line, top in found if top in ALLOWED]


def modules(top: str) -> list[Path]:
    return [ROOT / f"{top}.py"] if top == "worker" else sorted((ROOT / top).rglob("*.py"))


def test_every_top_level_package_has_a_place() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    scripts = {path.stem for path in ROOT.glob("*.py")}
    assert packages | scripts == set(ALLOWED)


@pytest.mark.parametrize("top", sorted(ALLOWED))
def test_imports_point_down(top: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in modules(top)
        for line, name in imported(path.read_text(), top)
        if name not in ALLOWED[top]
    ]
    assert modules(top)
    assert not wrong, f"{top} may import only {sorted(ALLOWED[top])}:\n" + "\n".join(wrong)


def test_the_check_sees_imports_that_point_up() -> None:
    source = "import os, worker\nfrom starter.cli import main\nfrom . import api\n"
    assert imported(source, "service") == [(1, "worker"), (2, "starter"), (3, "service")]
