"""Start-up cost of the installed executables without a daemon: VERSION and a trivial ADD+DEL.

Run as root: `.venv/bin/python bench/startup_bench.py [--runs N]`. Both kinds of executable
are measured: the Python launcher, and the native forwarder (which finds no daemon and execs
its Python fallback, so its row is the fallback's cost). The reference Go plugins from Debian
(/usr/lib/cni) are measured in the same run where present.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REFERENCE_DIR, exec_plugin, table
from pycni.install import LauncherKind, install
from pycni.registry import PLUGINS

#: Where no daemon listens: the pycni rows measure the in-process path.
NO_DAEMON = {"PYCNI_DAEMON_SOCKET": "/nonexistent/pycni-bench.sock"}


def median_ms(
    binary: Path,
    command: str,
    conf: dict[str, Any] | None,
    runs: int,
    env: dict[str, str] | None = None,
    netns_exec: str | None = None,
) -> float:
    samples = []
    for _ in range(runs):
        seconds, _ = exec_plugin(binary, command, conf, env, netns_exec)
        samples.append(seconds)
    return statistics.median(samples) * 1000


def host_local_add_del(binary: Path, runs: int, data_dir: Path, version: str) -> float:
    data_dir = data_dir / binary.parent.name
    conf = {
        "cniVersion": version,
        "name": "bench",
        "type": "host-local",
        "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": "10.250.0.0/16"}]]},
    }
    samples = []
    for i in range(runs):
        env = {
            "CNI_CONTAINERID": f"c{i}",
            "CNI_NETNS": "/proc/self/ns/net",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(binary.parent),
            **NO_DAEMON,
        }
        add, proc = exec_plugin(binary, "ADD", conf, env)
        assert proc.returncode == 0, proc.stdout
        delete, _ = exec_plugin(binary, "DEL", conf, env)
        samples.append(add + delete)
    return statistics.median(samples) * 1000


def bridge_l2_add_del(binary: Path, runs: int, version: str) -> float:
    node = f"bn{uuid.uuid4().hex[:8]}"
    pod = f"bp{uuid.uuid4().hex[:8]}"
    for ns in (node, pod):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        conf = {"cniVersion": version, "name": "bench", "type": "bridge", "bridge": "brbench", "ipam": {}}
        env = {
            "CNI_CONTAINERID": "c1",
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(binary.parent),
            **NO_DAEMON,
        }
        samples = []
        for _ in range(runs):
            add, proc = exec_plugin(binary, "ADD", conf, env, netns_exec=node)
            assert proc.returncode == 0, proc.stdout
            delete, _ = exec_plugin(binary, "DEL", conf, env, netns_exec=node)
            samples.append(add + delete)
        return statistics.median(samples) * 1000
    finally:
        for ns in (node, pod):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def ratio_row(plugin_type: str, command: str, kind: str, ours: float, ref: float | None) -> list[str]:
    return [
        plugin_type,
        command,
        kind,
        f"{ours:.1f}",
        f"{ref:.1f}" if ref else "-",
        f"{ours / ref:.2f}" if ref else "-",
    ]


def measure(bin_dir: Path, kind: str, runs: int, tmp: Path) -> list[list[str]]:
    rows = []
    for plugin_type in sorted(PLUGINS):
        ours = median_ms(bin_dir / plugin_type, "VERSION", {"cniVersion": "1.0.0"}, runs, NO_DAEMON)
        ref_bin = REFERENCE_DIR / plugin_type
        ref = median_ms(ref_bin, "VERSION", {"cniVersion": "1.0.0"}, runs) if ref_bin.exists() else None
        rows.append(ratio_row(plugin_type, "VERSION", kind, ours, ref))
    ours_bin, ref_bin = bin_dir / "host-local", REFERENCE_DIR / "host-local"
    ours = host_local_add_del(ours_bin, runs, tmp / "ours", "1.0.0")
    ref = host_local_add_del(ref_bin, runs, tmp / "ref", "1.0.0") if ref_bin.exists() else None
    rows.append(ratio_row("host-local", "ADD+DEL", kind, ours, ref))
    ours_bin, ref_bin = bin_dir / "bridge", REFERENCE_DIR / "bridge"
    ours = bridge_l2_add_del(ours_bin, runs, "1.0.0")
    ref = bridge_l2_add_del(ref_bin, runs, "1.0.0") if ref_bin.exists() else None
    rows.append(ratio_row("bridge", "ADD+DEL", kind, ours, ref))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        kinds: tuple[LauncherKind, ...] = ("python", "native")
        for kind in kinds:
            bin_dir = Path(tmp) / kind
            install(bin_dir, launcher=kind)
            rows += measure(bin_dir, kind, args.runs, Path(tmp))
    print(f"median of {args.runs} runs, exec'd plugins (no daemon)")
    print(table(rows, ["type", "command", "executable", "ours ms", "reference ms", "ratio"]))


if __name__ == "__main__":
    main()
