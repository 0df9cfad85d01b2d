"""Fixtures for the migration tests: one node netns, the Go reference's plugins and ours on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.migration.node import GO_BIN, Side, go_plugins_installed


@pytest.fixture(autouse=True)
def _go_plugins() -> None:
    if not go_plugins_installed("bridge", "host-local", "host-device"):
        pytest.skip(f"the Debian containernetworking-plugins are not installed in {GO_BIN}")


@pytest.fixture
def node(make_netns: Callable[..., Netns]) -> Netns:
    return make_netns("mnode")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Everything both sides keep on disk for the node: compared before and after."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def ours(bin_dir: Path, tmp_path: Path, data: Path) -> Side:
    env = {"PYCNI_STATE_DIR": str(data / "state"), "PYCNI_RUN_DIR": str(tmp_path / "run")}
    return Side("pycni", Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"}), env)


@pytest.fixture
def go() -> Side:
    return Side("go", Runner(GO_BIN), {})


@pytest.fixture
def sides(ours: Side, go: Side) -> dict[str, Side]:
    return {"pycni": ours, "go": go}
