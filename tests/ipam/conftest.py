"""Fixtures for host-local tests: a private dataDir per test and config builders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import Outcome, Runner

NETNS = "/var/run/netns/ipam-test"  # IPAM never enters it; ADD only needs it set


@dataclass
class Net:
    """One network's config and store, in a directory no other test uses."""

    cni: Runner
    data_dir: Path
    name: str = "ipamnet"
    binary: str = "host-local"

    @property
    def dir(self) -> Path:
        return self.data_dir / self.name

    def conf(self, cni_version: str = "1.0.0", ranges: Any = None, **ipam: Any) -> dict[str, Any]:
        ranges = [[{"subnet": "10.99.0.0/24"}]] if ranges is None else ranges
        return {
            "cniVersion": cni_version,
            "name": self.name,
            "type": "bridge",
            "ipam": {"type": "host-local", "dataDir": str(self.data_dir), "ranges": ranges, **ipam},
        }

    def run(
        self, command: str, conf: dict[str, Any], container_id: str = "ctr-0", ifname: str = "eth0", **kw: Any
    ) -> Outcome:
        return self.cni(
            self.binary, command, conf, netns=NETNS, container_id=container_id, ifname=ifname, **kw
        )

    def reservations(self) -> dict[str, bytes]:
        """Address file → content, straight from the directory (not through the code under test)."""
        if not self.dir.is_dir():
            return {}
        return {
            p.name: p.read_bytes()
            for p in self.dir.iterdir()
            if p.name != "lock" and not p.name.startswith("last_reserved_ip.")
        }


@pytest.fixture
def net(cni: Runner, tmp_path: Path) -> Net:
    return Net(cni, tmp_path / "data")
