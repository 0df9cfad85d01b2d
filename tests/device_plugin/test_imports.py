"""The device plugin's modules import one another in one direction only, and reach outside the
package only for the shared layers (`cni`, `hw`, `k8s`, `net`).

Read from the source (every import statement, TYPE_CHECKING and function-level ones included), so a
cycle hidden behind a lazy import counts as a cycle.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pycni.device_plugin

PACKAGE = "pycni.device_plugin"
SHARED = ("pycni.cni", "pycni.hw", "pycni.k8s", "pycni.net")


def imports_of(path: Path) -> set[str]:
    """Absolute module names imported anywhere in `path` (`from a import b` counts as `a` and `a.b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def package_graph() -> dict[str, set[str]]:
    directory = Path(pycni.device_plugin.__file__).parent
    modules = {f"{PACKAGE}.{p.stem}": p for p in directory.glob("*.py") if p.stem != "__init__"}
    return {name: imports_of(path) for name, path in modules.items()}


def test_device_plugin_modules_import_each_other_without_cycles() -> None:
    graph = package_graph()
    internal = {name: deps & graph.keys() for name, deps in graph.items()}
    try:
        tuple(TopologicalSorter(internal).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_device_plugin_reaches_outside_only_for_shared_layers() -> None:
    for name, deps in package_graph().items():
        ours = {d for d in deps if d.startswith("pycni.") and not d.startswith(PACKAGE)}
        foreign = {d for d in ours if not d.startswith(SHARED)}
        assert not foreign, f"{name} imports {sorted(foreign)}"
