"""Start-up cost of the installed executables: VERSION and a trivial ADD+DEL per type.

Run as root: `.venv/bin/python bench/startup_bench.py [--runs N]`. The reference Go plugins
from Debian (/usr/lib/cni) are measured in the same run where present.
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
from pycni.install import install
from pycni.registry import PLUGINS


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bin_dir = Path(tmp) / "bin"
        install(bin_dir)
        rows = []
        for plugin_type in sorted(PLUGINS):
            ours = median_ms(bin_dir / plugin_type, "VERSION", {"cniVersion": "1.0.0"}, args.runs)
            ref_bin = REFERENCE_DIR / plugin_type
            ref = (
                median_ms(ref_bin, "VERSION", {"cniVersion": "1.0.0"}, args.runs)
                if ref_bin.exists()
                else None
            )
            rows.append(
                [
                    plugin_type,
                    "VERSION",
                    f"{ours:.1f}",
                    f"{ref:.1f}" if ref else "-",
                    f"{ours / ref:.2f}" if ref else "-",
                ]
            )
        for plugin_type, func in (("host-local", host_local_add_del), ("bridge", None)):
            ours_bin = bin_dir / plugin_type
            ref_bin = REFERENCE_DIR / plugin_type
            if func is not None:
                ours = func(ours_bin, args.runs, Path(tmp) / "ours", "1.0.0")
                ref = func(ref_bin, args.runs, Path(tmp) / "ref", "1.0.0") if ref_bin.exists() else None
            else:
                ours = bridge_l2_add_del(ours_bin, args.runs, "1.0.0")
                ref = bridge_l2_add_del(ref_bin, args.runs, "1.0.0") if ref_bin.exists() else None
            rows.append(
                [
                    plugin_type,
                    "ADD+DEL",
                    f"{ours:.1f}",
                    f"{ref:.1f}" if ref else "-",
                    f"{ours / ref:.2f}" if ref else "-",
                ]
            )
    print(f"median of {args.runs} runs, exec'd plugins (no daemon)")
    print(table(rows, ["type", "command", "ours ms", "reference ms", "ratio"]))


if __name__ == "__main__":
    main()
