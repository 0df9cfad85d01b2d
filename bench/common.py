"""Small helpers shared by the benchmarks: timing exec'd plugins, percentiles, tables."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.net.netns import setns

REFERENCE_DIR = Path("/usr/lib/cni")


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples) * 1000,
        "p90": percentile(samples, 90) * 1000,
        "p99": percentile(samples, 99) * 1000,
    }


def exec_plugin(
    binary: Path | str,
    command: str,
    conf: dict[str, Any] | None,
    env: dict[str, str] | None = None,
    netns_exec: str | None = None,
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run a plugin once; return (seconds, process)."""
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, **(env or {})}
    argv = [str(binary)] if netns_exec is None else ["ip", "netns", "exec", netns_exec, str(binary)]
    data = json.dumps(conf or {}).encode()
    start = time.perf_counter()
    proc = subprocess.run(argv, input=data, env=full_env, capture_output=True, check=False)
    return time.perf_counter() - start, proc


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True))

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def enter_netns(path: str) -> None:
    """Move this (still single-threaded) process into `path`; threads and children follow."""
    fd = os.open(path, os.O_RDONLY)
    try:
        setns(fd)
    finally:
        os.close(fd)


@contextmanager
def node_with_pods(prefix: str, count: int) -> Iterator[list[str]]:
    """A throw-away "node" netns this process enters, and `count` pod netns names; all removed after.

    Entering the node means the plugins run there without an `ip netns exec` in front of them,
    and the machine's own network is never touched.
    """
    node = f"{prefix}n{uuid.uuid4().hex[:8]}"
    pods = [f"{prefix}p{uuid.uuid4().hex[:10]}" for _ in range(count)]
    sh("ip", "netns", "add", node)
    try:
        for pod in pods:
            sh("ip", "netns", "add", pod)
        enter_netns(f"/run/netns/{node}")
        sh("ip", "link", "set", "lo", "up")
        yield pods
    finally:
        for ns in [*pods, node]:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


# -- a fake SR-IOV NIC ---------------------------------------------------------------------------
# The benches cannot import the test helpers, so this is the part of the tests' fake sysfs tree
# (tests/helpers/fake_sysfs.py) that a NIC with kernel-driver VFs needs, laid out the same way.

PCI_BRIDGE = "pci0000:00"


@dataclass(frozen=True)
class FakeVf:
    """One VF of a fake NIC: its PCI address, index on its PF, and the netdev sysfs names."""

    address: str
    index: int
    pf_netdev: str
    netdev: str


def _sys_write(path: Path, text: str) -> None:
    path.write_text(text + "\n")


def _fake_pci(root: Path, address: str, driver: str, group: int, netdev: str, totalvfs: int | None) -> Path:
    dev = root / "devices" / PCI_BRIDGE / address
    dev.mkdir(parents=True)
    for name, value in (
        ("vendor", "0x8086"),
        ("device", "0x154c"),
        ("class", "0x020000"),
        ("numa_node", "0"),
    ):
        _sys_write(dev / name, value)
    (root / "bus/pci/devices" / address).symlink_to(f"../../../devices/{PCI_BRIDGE}/{address}")
    if totalvfs is not None:
        _sys_write(dev / "sriov_totalvfs", str(totalvfs))
        _sys_write(dev / "sriov_numvfs", "0")
    groups = root / "kernel/iommu_groups" / str(group) / "devices"
    groups.mkdir(parents=True)
    (groups / address).symlink_to(f"../../../../devices/{PCI_BRIDGE}/{address}")
    (dev / "iommu_group").symlink_to(f"../../../kernel/iommu_groups/{group}")
    drv = root / "bus/pci/drivers" / driver
    drv.mkdir(parents=True, exist_ok=True)
    (drv / address).symlink_to(f"../../../../devices/{PCI_BRIDGE}/{address}")
    (dev / "driver").symlink_to(f"../../../bus/pci/drivers/{driver}")
    net = dev / "net" / netdev
    net.mkdir(parents=True)
    digits = "".join(c for c in address if c.isalnum())[-10:].rjust(10, "0")
    _sys_write(net / "operstate", "up")
    _sys_write(net / "address", "02:" + ":".join(digits[i : i + 2] for i in range(0, 10, 2)))
    _sys_write(net / "type", "1")
    (net / "device").symlink_to(f"../../../{address}")
    (root / "class/net" / netdev).symlink_to(f"../../devices/{PCI_BRIDGE}/{address}/net/{netdev}")
    return dev


def build_fake_nic(root: Path, pf_netdev: str, bus: int, vfs: int) -> list[FakeVf]:
    """A PF (i40e) with `vfs` iavf VFs, each with a netdev `<pf>v<N>`, under the sysfs root `root`."""
    for sub in (
        "devices/" + PCI_BRIDGE,
        "bus/pci/devices",
        "bus/pci/drivers",
        "class/net",
        "kernel/iommu_groups",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    pf = f"0000:{bus:02x}:00.0"
    group = bus * 100
    pf_dir = _fake_pci(root, pf, "i40e", group, pf_netdev, totalvfs=64)
    out = []
    for index in range(vfs):
        address = f"0000:{bus:02x}:{2 + index // 8:02x}.{index % 8}"
        netdev = f"{pf_netdev}v{index}"
        vf_dir = _fake_pci(root, address, "iavf", group + 1 + index, netdev, totalvfs=None)
        (vf_dir / "physfn").symlink_to(f"../{pf}")
        (pf_dir / f"virtfn{index}").symlink_to(f"../{address}")
        out.append(FakeVf(address, index, pf_netdev, netdev))
    _sys_write(pf_dir / "sriov_numvfs", str(vfs))
    return out
