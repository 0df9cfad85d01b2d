"""The vxlan overlay's cost: pod-to-pod TCP throughput across it next to a plain bridge, and
the ADD/DEL latency of the vxlan and bridge executables.

Run as root: `.venv/bin/python bench/vxlan_bench.py [--seconds S] [--runs N] [--json]`.
Two simulated nodes (namespaces) on an underlay bridge; the overlay pair is one pod per node,
the bridge pair is two pods on one node's plain bridge. Throughput is iperf3 (Debian)
between pod namespaces. Everything is created under unique names and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import exec_plugin, summary_ms, table
from pycni.install import install

TAG = uuid.uuid4().hex[:6]
VNI = 4711


def sh(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


class World:
    """The namespaces of one run, deleted in `close` whatever happened."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def netns(self, role: str) -> str:
        name = f"vxb{role}{TAG}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def close(self) -> None:
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextmanager
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
    finally:
        w.close()


def build_nodes(w: World) -> list[str]:
    under = w.netns("u")
    sh("ip", "-n", under, "link", "add", "ul", "type", "bridge")
    sh("ip", "-n", under, "link", "set", "ul", "up")
    nodes = []
    for i in range(2):
        node = w.netns(f"n{i}")
        sh("ip", "-n", under, "link", "add", f"n{i}", "type", "veth", "peer", "name", "up0", "netns", node)
        sh("ip", "-n", under, "link", "set", f"n{i}", "master", "ul", "up")
        sh("ip", "-n", node, "addr", "add", f"192.0.2.{i + 1}/24", "dev", "up0")
        sh("ip", "-n", node, "link", "set", "up0", "up")
        nodes.append(node)
    return nodes


def ipam(data: Path, subnet: str, lo: int, hi: int) -> dict[str, Any]:
    prefix = subnet.rsplit(".", 1)[0]
    rng = {"subnet": subnet, "rangeStart": f"{prefix}.{lo}", "rangeEnd": f"{prefix}.{hi}"}
    return {"type": "host-local", "dataDir": str(data), "ranges": [[rng]]}


def vxlan_conf(data: Path, node: int) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": "benchvx",
        "type": "vxlan",
        "vni": VNI,
        "remotes": ["192.0.2.1", "192.0.2.2"],
        "ipam": ipam(data / f"n{node}", "10.98.0.0/24", 10 + 100 * node, 99 + 100 * node),
    }


def bridge_conf(data: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": "benchbr",
        "type": "bridge",
        "bridge": "bbr0",
        "ipam": ipam(data / "br", "10.99.0.0/24", 10, 250),
    }


class Plugins:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir

    def call(self, kind: str, command: str, conf: dict[str, Any], node: str, pod: str, cid: str) -> float:
        env = {
            "CNI_CONTAINERID": cid,
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bin_dir),
            "PYCNI_RUN_DIR": str(self.bin_dir.parent / "run"),  # lock files go away with the run
        }
        seconds, proc = exec_plugin(self.bin_dir / kind, command, conf, env, netns_exec=node)
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} {command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
        return seconds

    def add_pod(self, w: World, kind: str, conf: dict[str, Any], node: str) -> tuple[str, str]:
        """(pod netns, its IPv4 address)."""
        pod = w.netns(f"p{len(w.names)}")
        self.call(kind, "ADD", conf, node, pod, pod)
        info = json.loads(sh("ip", "-n", pod, "-j", "-4", "addr", "show", "dev", "eth0"))
        return pod, info[0]["addr_info"][0]["local"]


def listening(pod: str, port: int) -> bool:
    return f":{port} " in sh("ip", "netns", "exec", pod, "ss", "-ltnH")


def throughput_gbps(server: str, client: str, address: str, seconds: float) -> float:
    """iperf3 from `client` to `server` (a one-off server), in Gbit/s received."""
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server, "iperf3", "-s", "-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not listening(server, 5201):
            if time.monotonic() > deadline or srv.poll() is not None:
                raise RuntimeError("iperf3 server did not start")
            time.sleep(0.02)
        out = sh("ip", "netns", "exec", client, "iperf3", "-c", address, "-t", str(seconds), "-J")
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        srv.wait(timeout=30)


def latency(
    plugins: Plugins, w: World, kind: str, conf: dict[str, Any], node: str, runs: int
) -> dict[str, Any]:
    """ADD and DEL of one pod, `runs` times, on a node whose shared devices already exist."""
    pod = w.netns(f"l{kind[:2]}")
    adds, dels = [], []
    for i in range(runs):
        adds.append(plugins.call(kind, "ADD", conf, node, pod, f"lat{i}"))
        dels.append(plugins.call(kind, "DEL", conf, node, pod, f"lat{i}"))
    return {"add": summary_ms(adds), "del": summary_ms(dels)}


def run(seconds: float, runs: int) -> dict[str, Any]:
    if shutil.which("iperf3") is None:
        raise SystemExit("iperf3 is not installed")
    with tempfile.TemporaryDirectory(prefix="vxbench") as tmp, world() as w:
        data = Path(tmp)
        plugins = Plugins(data / "bin")
        install(plugins.bin_dir, ["vxlan", "bridge", "host-local"])
        nodes = build_nodes(w)
        a, _ = plugins.add_pod(w, "vxlan", vxlan_conf(data, 0), nodes[0])
        b, b_ip = plugins.add_pod(w, "vxlan", vxlan_conf(data, 1), nodes[1])
        c, _ = plugins.add_pod(w, "bridge", bridge_conf(data), nodes[0])
        d, d_ip = plugins.add_pod(w, "bridge", bridge_conf(data), nodes[0])
        overlay = throughput_gbps(b, a, b_ip, seconds)
        plain = throughput_gbps(d, c, d_ip, seconds)
        return {
            "throughput_gbps": {"vxlan": overlay, "bridge": plain, "ratio": overlay / plain},
            "latency_ms": {
                "vxlan": latency(plugins, w, "vxlan", vxlan_conf(data, 0), nodes[0], runs),
                "bridge": latency(plugins, w, "bridge", bridge_conf(data), nodes[0], runs),
            },
        }


def report(res: dict[str, Any]) -> str:
    tp = res["throughput_gbps"]
    lines = [
        f"TCP pod-to-pod: vxlan {tp['vxlan']:.2f} Gbit/s, plain bridge {tp['bridge']:.2f} Gbit/s, "
        f"ratio {tp['ratio']:.2f}",
        "",
    ]
    rows = []
    for kind, lat in res["latency_ms"].items():
        for verb in ("add", "del"):
            s = lat[verb]
            rows.append([kind, verb.upper(), f"{s['median']:.1f}", f"{s['p90']:.1f}", f"{s['p99']:.1f}"])
    lines.append(table(rows, ["plugin", "verb", "median ms", "p90 ms", "p99 ms"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="iperf3 run length")
    parser.add_argument("--runs", type=int, default=20, help="ADD/DEL pairs per plugin")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = run(args.seconds, args.runs)
    print(json.dumps(res, indent=2) if args.json else report(res))


if __name__ == "__main__":
    main()
