"""sriov ADD/DEL latency next to host-device's: same fake tree, same machine, one run.

Run as root: `.venv/bin/python bench/sriov_bench.py [--runs N] [--json out.json]`.
The process enters a throw-away "node" netns holding veth stand-ins for two kernel-driver VFs of a
fake SR-IOV tree (`tests/helpers/fake_sysfs.py`, `PYCNI_SYSFS_ROOT`); their peers sit in a "wire"
netns. `sriov` takes one VF by `deviceID` and sets a MAC, a VLAN, spoof check and trust through the
PF-side state file (`PYCNI_SRIOV_VF_STATE`); `host-device` takes the other by the same
`runtimeConfig.deviceID`. Both run host-local, both move the netdev through a temporary netns into
the pod and back. Each is run as its own executable (PYCNI_DAEMON=off) and through a `pycni daemon`;
Debian's reference `host-device` (by device name: it reads the real /sys only) is added when
installed. Variants are interleaved round by round, so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REFERENCE_DIR, add_del_report, exec_plugin, sh
from bench.lifecycle_bench import start_daemon
from pycni.install import install
from tests.helpers.fake_sysfs import FakeVf, build_sriov_node
from tests.helpers.netns import enter_netns

LAYOUT = (("ens1f0", 0x3B, 0, "154c", ("iavf",) * 3),)


@dataclass
class Variant:
    name: str
    binary: Path
    env: dict[str, str]
    keys: dict[str, Any]
    pod: str
    add: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)

    def conf(self, ipam_dir: Path) -> dict[str, Any]:
        ipam = {"type": "host-local", "dataDir": str(ipam_dir), "ranges": [[{"subnet": "10.77.0.0/16"}]]}
        return {
            "cniVersion": "1.0.0",
            "name": "bench-" + self.name.replace("+", "-").replace(" ", "-"),
            "type": self.binary.name,
            "ipam": ipam,
            **self.keys,
        }

    def lifecycle(self, ipam_dir: Path, container_id: str, record: bool) -> None:
        env = {
            **self.env,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": f"/run/netns/{self.pod}",
            "CNI_IFNAME": "net1",
            "CNI_PATH": str(self.binary.parent),
        }
        for command, samples in (("ADD", self.add), ("DEL", self.delete)):
            seconds, proc = exec_plugin(self.binary, command, self.conf(ipam_dir), env)
            if proc.returncode != 0:
                raise RuntimeError(f"{self.name} {command} failed: {proc.stdout!r} {proc.stderr!r}")
            if record:
                samples.append(seconds)


def variants(work: Path, vfs: list[FakeVf], bin_dir: Path, sock: Path, pods: list[str]) -> list[Variant]:
    vf_sriov, vf_host, vf_ref = vfs
    common = {
        "PYCNI_SYSFS_ROOT": str(work / "sys"),
        "PYCNI_STATE_DIR": str(work / "state"),
        "PYCNI_RUN_DIR": str(work / "run"),
        "PYCNI_SRIOV_VF_STATE": str(work / "vf-state.json"),
    }
    direct = {**common, "PYCNI_DAEMON": "off"}
    daemon = {**common, "PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(sock)}
    sriov_keys = {
        "deviceID": vf_sriov.address,
        "mac": "0a:58:0a:4d:00:01",
        "vlan": 100,
        "spoofchk": "on",
        "trust": "off",
    }
    host_keys = {"runtimeConfig": {"deviceID": vf_host.address}}
    out = [
        Variant("sriov", bin_dir / "sriov", direct, sriov_keys, pods[0]),
        Variant("sriov+daemon", bin_dir / "sriov", daemon, sriov_keys, pods[1]),
        Variant("host-device", bin_dir / "host-device", direct, host_keys, pods[2]),
        Variant("host-device+daemon", bin_dir / "host-device", daemon, host_keys, pods[3]),
    ]
    if (REFERENCE_DIR / "host-device").exists():
        out.append(
            Variant(
                "reference host-device", REFERENCE_DIR / "host-device", {}, {"device": vf_ref.netdev}, pods[4]
            )
        )
    return out


def add_stand_ins(node: str, wire: str, vfs: list[FakeVf]) -> None:
    """A veth end in the node per VF netdev, named as the fake tree names it; the peer in the wire."""
    for vf in vfs:
        name = vf.netdev or ""
        sh(
            "ip",
            "-n",
            wire,
            "link",
            "add",
            f"w{vf.index}",
            "type",
            "veth",
            "peer",
            "name",
            name,
            "netns",
            node,
        )
        sh("ip", "-n", node, "link", "set", name, "up")
        sh("ip", "-n", wire, "link", "set", f"w{vf.index}", "up")


def run(args: argparse.Namespace, work: Path, node: str, wire: str, pods: list[str]) -> list[Variant]:
    bin_dir = work / "bin"
    install(bin_dir)
    (work / "sock").mkdir(mode=0o700)
    sock = work / "sock" / "daemon.sock"
    vfs = build_sriov_node(work / "sys", LAYOUT).vfs
    add_stand_ins(node, wire, vfs)
    chosen = variants(work, vfs, bin_dir, sock, pods)
    daemon = start_daemon(sock, args.workers)
    try:
        for i in range(args.warmup + args.runs):
            for v in chosen:
                v.lifecycle(work / "ipam", f"bench-{i}", record=i >= args.warmup)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="daemon workers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    tag = uuid.uuid4().hex[:8]
    node, wire, pods = f"sbn{tag}", f"sbw{tag}", [f"sbp{tag}{i}" for i in range(5)]
    try:
        for ns in (node, wire, *pods):
            sh("ip", "netns", "add", ns)
        enter_netns(f"/run/netns/{node}")
        sh("ip", "link", "set", "lo", "up")
        with tempfile.TemporaryDirectory(prefix="psb") as tmp:
            results = add_del_report(run(args, Path(tmp), node, wire, pods), "ADD and DEL latency")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for ns in (*pods, wire, node):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
