"""Test support for host-device: stand-in devices, a recording IPAM stand-in, fake PCI devices.

Stand-in devices are veth ends created in a throw-away "node" netns with their peers parked in
another ("sink"), so the machine's own interfaces are never touched. Kernel state is read back
with `ip -j` (tests/helpers/netns.py), not with the helpers under test.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.cni import Outcome, Runner, in_node
from tests.helpers.fake_sysfs import BRIDGE, FakeSysfs
from tests.helpers.netns import Netns, unique

IPAM_TYPE = "hd-test-ipam"

#: An IPAM plugin stand-in: records every call, answers ADD with a fixed lease, fails on request.
IPAM_STAND_IN = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
cmd = os.environ["CNI_COMMAND"]
with open({record!r}, "a") as f:
    f.write(json.dumps({{"cmd": cmd, "cid": os.environ.get("CNI_CONTAINERID"),
                        "ifname": os.environ.get("CNI_IFNAME"),
                        "valid": conf.get("cni.dev/valid-attachments")}}) + "\\n")
if conf["ipam"].get("failOn") == cmd:
    print(json.dumps({{"code": 11, "msg": "ipam stand-in refused " + cmd}}))
    sys.exit(1)
if cmd == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0",
                      "ips": [{{"address": "10.77.3.5/24", "gateway": "10.77.3.1"}}],
                      "routes": [{{"dst": "10.78.0.0/16"}}],
                      "dns": {{"nameservers": ["10.77.3.53"]}}}}))
"""


@dataclass
class Node:
    """A simulated node: its netns, a sink for veth peers, its CNI env and runner."""

    ns: Netns
    sink: Netns
    pod_factory: Callable[[], Netns]
    runner: Runner
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    def stand_in(self, mtu: int = 1500, up: bool = True, alias: str = "", altname: str = "") -> str:
        """A veth end in the node netns named like a NIC; its peer lives in the sink."""
        name, peer = unique("hd"), unique("hp")
        self.sink.run("ip", "link", "add", peer, "type", "veth", "peer", "name", name, "netns", self.ns.name)
        self.ns.run("ip", "link", "set", name, "mtu", str(mtu))
        if alias:
            self.ns.run("ip", "link", "set", name, "alias", alias)
        if altname:
            self.ns.run("ip", "link", "property", "add", "dev", name, "altname", altname)
        if up:
            self.ns.run("ip", "link", "set", name, "up")
        return name

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
    ) -> Outcome:
        return in_node(
            self.runner,
            self.ns,
            self.env,
            "host-device",
            command,
            conf,
            pod,
            container_id=container_id,
            ifname=ifname,
            netns=netns,
        )

    def ipam_calls(self) -> list[dict[str, Any]]:
        record = self.tmp / "ipam-calls.jsonl"
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    def state_files(self) -> list[str]:
        directory = self.tmp / "state" / "host-device"
        return sorted(p.name for p in directory.glob("*.json")) if directory.exists() else []


def install_ipam_stand_in(tmp: Path) -> Path:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / IPAM_TYPE
    exe.write_text(IPAM_STAND_IN.format(python=sys.executable, record=str(tmp / "ipam-calls.jsonl")))
    exe.chmod(0o755)
    return bin_dir


def conf(cni_version: str = "1.1.0", ipam: dict[str, Any] | None = None, **keys: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": cni_version, "name": "hdnet", "type": "host-device", **keys}
    if ipam is not None:
        out["ipam"] = {"type": IPAM_TYPE, **ipam}
    return out


def link(ns: Netns, name: str) -> dict[str, Any] | None:
    return ns.links().get(name)


def present(ns: Netns, name: str) -> dict[str, Any]:
    found = link(ns, name)
    assert found is not None, f"{name} is not in {ns.name}"
    return found


def fake_pci(root: Path, address: str, driver: str, netdevs: tuple[str, ...] = ()) -> str:
    """A PCI function in a fake sysfs tree; returns its `/sys/devices/...` kernel path."""
    FakeSysfs(root).add_pci(address, driver=driver, netdevs=netdevs)
    return f"/sys/devices/{BRIDGE}/{address}"
