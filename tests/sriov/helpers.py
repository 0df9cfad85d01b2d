"""Test support for sriov: a simulated SR-IOV node.

- The hardware is a fake sysfs tree (`tests/helpers/fake_sysfs.py`): PF `ens1f0` with kernel-driver
  VFs (iavf) and VFIO VFs, pointed at by `PYCNI_SYSFS_ROOT`.
- Each kernel VF's netdev is a veth end in a throw-away "node" netns, named as the tree names it;
  its peer sits in a "wire" netns, where a test can answer pings or capture frames.
- The PF-side VF settings live in a JSON file (`PYCNI_SRIOV_VF_STATE`), seeded with values that
  differ from the defaults, so a restore to defaults would show.
- IPAM is the real host-local with its own data dir, so leaks are visible as files.

Kernel state is read back with `ip -j` (tests/helpers/netns.py), not with the code under test.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.cni import Outcome, Runner, in_node
from tests.helpers.fake_sysfs import FakeNode, FakeVf, build_sriov_node
from tests.helpers.netns import Netns

PF = "ens1f0"
PF_ADDRESS = "0000:3b:00.0"
SUBNET = "10.56.217.0/24"
SUBNET6 = "fd00:56:217::/64"


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def layout(kernel_vfs: int = 4, vfio_vfs: int = 2) -> tuple[tuple[str, int, int, str, tuple[str, ...]], ...]:
    return ((PF, 0x3B, 0, "154c", ("iavf",) * kernel_vfs + ("vfio-pci",) * vfio_vfs),)


def seeded_state(index: int) -> dict[str, Any]:
    """A VF's PF-side settings before any pod: non-default everywhere, distinct per VF."""
    return {
        "mac": f"02:5e:ed:00:00:{index:02x}",
        "vlan": 10 + index,
        "qos": 1,
        "vlan_proto": "802.1Q",
        "spoofchk": False,
        "trust": True,
        "link_state": "disable",
        "min_tx_rate": 5,
        "max_tx_rate": 500,
    }


def stand_in_mac(index: int) -> str:
    return f"02:aa:00:00:3b:{index:02x}"


@dataclass
class SriovNode:
    """A simulated node: its netns, the wire for the VF stand-ins' peers, sysfs, env and runner."""

    ns: Netns
    wire: Netns
    pod_factory: Callable[[], Netns]
    runner: Runner
    tmp: Path
    fake: FakeNode
    env: dict[str, str] = field(default_factory=dict)

    @property
    def kernel_vfs(self) -> list[FakeVf]:
        return [vf for vf in self.fake.vfs if vf.netdev]

    @property
    def vfio_vfs(self) -> list[FakeVf]:
        return [vf for vf in self.fake.vfs if not vf.netdev]

    @property
    def vf_state_file(self) -> Path:
        return self.tmp / "vf-state.json"

    @property
    def ipam_dir(self) -> Path:
        return self.tmp / "ipam"

    def add_stand_ins(self) -> None:
        """A veth end per kernel VF netdev, up, MTU 1500, with a known MAC; its peer in the wire."""
        for vf in self.kernel_vfs:
            assert vf.netdev is not None
            peer = f"w{vf.index}"
            self.wire.run(
                "ip", "link", "add", peer, "type", "veth", "peer", "name", vf.netdev, "netns", self.ns.name
            )
            self.ns.run("ip", "link", "set", vf.netdev, "address", stand_in_mac(vf.index), "up")
            self.wire.run("ip", "link", "set", peer, "up")

    def seed(self) -> dict[str, Any]:
        data = {PF: {str(vf.index): seeded_state(vf.index) for vf in self.fake.vfs}}
        self.vf_state_file.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        return data

    def pf_state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.vf_state_file.read_text())
        return data

    def pf_entry(self, vf: FakeVf) -> dict[str, Any]:
        entry: dict[str, Any] = self.pf_state()[PF][str(vf.index)]
        return entry

    def pod(self) -> Netns:
        return self.pod_factory()

    def cni(
        self,
        command: str,
        conf: dict[str, Any],
        pod: Netns | None,
        *,
        container_id: str = "ctr-a",
        ifname: str = "net1",
        netns: str | None = None,
        cni_args: str | None = None,
    ) -> Outcome:
        return in_node(
            self.runner,
            self.ns,
            self.env,
            "sriov",
            command,
            conf,
            pod,
            container_id=container_id,
            ifname=ifname,
            netns=netns,
            cni_args=cni_args,
        )

    def state_files(self) -> list[str]:
        base = self.tmp / "state" / "sriov"
        return sorted(str(p.relative_to(base)) for p in base.rglob("*.json")) if base.exists() else []

    def reservations(self) -> list[str]:
        """host-local's reservations (files named by address) under the IPAM data dir."""
        net_dir = self.ipam_dir / "sriovnet"
        return sorted(p.name for p in net_dir.iterdir() if _is_ip(p.name)) if net_dir.exists() else []

    def link(self, name: str) -> dict[str, Any] | None:
        return self.ns.links().get(name)


def conf(
    vf: FakeVf | str | None,
    cni_version: str = "1.1.0",
    *,
    ipam: bool | dict[str, Any] = True,
    node: SriovNode | None = None,
    **keys: Any,
) -> dict[str, Any]:
    """An sriov config for `vf` (by `deviceID`), with host-local IPAM in the node's data dir."""
    out: dict[str, Any] = {"cniVersion": cni_version, "name": "sriovnet", "type": "sriov", **keys}
    if vf is not None:
        out["deviceID"] = vf if isinstance(vf, str) else vf.address
    if ipam and node is not None:
        ranges = [[{"subnet": SUBNET}]]
        out["ipam"] = ipam if isinstance(ipam, dict) else {
            "type": "host-local", "dataDir": str(node.ipam_dir), "ranges": ranges,
        }  # fmt: skip
    return out


def make_node(
    make_netns: Callable[..., Netns],
    cni: Runner,
    bin_dir: Path,
    tmp: Path,
    kernel_vfs: int = 4,
    vfio_vfs: int = 2,
) -> SriovNode:
    fake = build_sriov_node(tmp / "sys", layout(kernel_vfs, vfio_vfs))
    env = {
        "CNI_PATH": str(bin_dir),
        "PYCNI_STATE_DIR": str(tmp / "state"),
        "PYCNI_RUN_DIR": str(tmp / "run"),
        "PYCNI_SYSFS_ROOT": str(tmp / "sys"),
        "PYCNI_SRIOV_VF_STATE": str(tmp / "vf-state.json"),
    }
    node = SriovNode(make_netns("svn"), make_netns("svw"), lambda: make_netns("svp"), cni, tmp, fake, env)
    node.add_stand_ins()
    node.seed()
    return node
