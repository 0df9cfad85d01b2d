"""Fixtures for bridge tests: a "node" namespace plays the host, so the machine is never touched."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netns import Netns, unique


@pytest.fixture
def node(make_netns: Callable[..., Netns]) -> Netns:
    return make_netns("node")


@pytest.fixture
def bridge_name() -> str:
    return unique("br", 12)


@pytest.fixture
def conf_factory(tmp_path: Path, bridge_name: str) -> Callable[..., dict[str, Any]]:
    """A bridge + host-local config with a private dataDir, as a runtime would pass it."""

    def make(
        version: str = "1.1.0", ranges: list[list[dict[str, str]]] | None = None, **keys: Any
    ) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": version,
            "name": "podnet",
            "type": "bridge",
            "bridge": bridge_name,
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(tmp_path / "ipam"),
                "ranges": ranges or [[{"subnet": "10.244.7.0/24"}]],
            },
        }
        conf.update(keys)
        return conf

    return make


DUAL_STACK = [[{"subnet": "10.244.8.0/24"}], [{"subnet": "fd00:8::/64"}]]
