"""The layout docs/architecture.md describes holds: two sides that share only the wire contract, no import
circle, and modules small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "batch_metrics"
CONTRACT = {"batch_metrics", "batch_metrics.models"}
# Modules over MAX_LINES, each with the reason splitting it would scatter one idea.
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every batch_metrics module `name` imports: at the top, inside functions, under TYPE_CHECKING."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            # `from package import module` imports the module; `from module import name` the module.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in MODULES)
    return found - {name}


GRAPH = {name: imports(name) for name in MODULES}


def test_the_package_has_both_sides_and_the_contract() -> None:
    assert {"batch_metrics.models", "batch_metrics.client", "batch_metrics.endpoint"} <= set(MODULES)
    assert sum(name.startswith("batch_metrics.client.") for name in MODULES) >= 10
    assert sum(name.startswith("batch_metrics.endpoint.") for name in MODULES) >= 10


def test_the_client_and_the_endpoint_share_only_the_wire_contract() -> None:
    crossings = []
    for name, targets in GRAPH.items():
        for side in ("client", "endpoint"):
            if name.startswith(f"batch_metrics.{side}"):
                allowed = CONTRACT | {n for n in MODULES if n.startswith(f"batch_metrics.{side}")}
                crossings += [f"{name} -> {target}" for target in targets - allowed]
    assert crossings == []


def test_the_contract_imports_nothing_of_ours() -> None:
    assert GRAPH["batch_metrics.models"] <= {"batch_metrics"}
    assert GRAPH["batch_metrics"] == set()


def test_nothing_imports_in_a_circle() -> None:
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target] if target in trail else [name, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_boundary_check_sees_a_crossing() -> None:
    """The checks above parse real imports: a module that reached across would be found."""
    assert "batch_metrics.endpoint.storage" in GRAPH["batch_metrics.endpoint.answers.dashboard"]
    assert "batch_metrics.client.collect" in GRAPH["batch_metrics.client.payload"]
    assert "batch_metrics.client.job" in GRAPH["batch_metrics.cli"]  # a lazy import inside a function


def test_no_module_is_too_long_to_read_in_one_sitting() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(long) <= set(LONG_MODULES), long
