"""A pod's ADD+DEL through `multus` (cluster network + one secondary network, both bridge +
host-local) next to the same two networks attached by calling the bare delegates, exec'd and
through the daemon, in the same run.

Run as root: `.venv/bin/python bench/multus_bench.py [--runs N] [--daemon-only] [--json out.json]`. Pods and
NADs come from a manifest directory (no API server). The process enters a throw-away "node"
namespace; each pod gets its own netns. Variants are interleaved run by run, so machine noise
hits them alike. "overhead" is multus minus the bare delegates of the same transport.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import exec_plugin, node_with_pods, summary_ms, table
from bench.lifecycle_bench import start_daemon
from pycni.install import install

CLUSTER = {"name": "podnet", "bridge": "mbc0", "subnet": "10.210.0.0/16", "gateway": True}
SECONDARY = {"name": "storage", "bridge": "mbs0", "subnet": "10.211.0.0/16", "gateway": False}


def bridge_conf(net: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": net["name"],
        "type": "bridge",
        "bridge": net["bridge"],
        "isGateway": net["gateway"],
        "isDefaultGateway": net["gateway"],
        "ipam": {"type": "host-local", "dataDir": str(data_dir), "ranges": [[{"subnet": net["subnet"]}]]},
    }


@dataclass
class Variant:
    name: str
    env: dict[str, str]
    multus: bool
    add: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)


def write_manifests(work: Path) -> Path:
    directory = work / "manifests"
    directory.mkdir()
    objects = [
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": net["name"], "namespace": namespace},
            "spec": {"config": json.dumps(bridge_conf(net, work / "ipam"))},
        }
        for net, namespace in ((CLUSTER, "kube-system"), (SECONDARY, "default"))
    ]
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "bench",
                "namespace": "default",
                "annotations": {"k8s.v1.cni.cncf.io/networks": "storage"},
            },
        }
    )
    (directory / "objects.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    return directory


def lifecycle(v: Variant, work: Path, bin_dir: Path, pod: str) -> None:
    env = {**v.env, "CNI_CONTAINERID": pod, "CNI_NETNS": f"/run/netns/{pod}", "CNI_PATH": str(bin_dir)}
    if v.multus:
        conf = {
            "cniVersion": "1.1.0",
            "name": "multus-cni-network",
            "type": "multus",
            "clusterNetwork": "podnet",
            "manifests": str(work / "manifests"),
            "cniDir": str(work / "multus"),
            "binDir": str(bin_dir),
        }
        env |= {"CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench"}
        calls = [(bin_dir / "multus", conf, env)]
    else:
        calls = [
            (bin_dir / "bridge", bridge_conf(net, work / "ipam"), {**env, "CNI_IFNAME": ifname})
            for net, ifname in ((CLUSTER, "eth0"), (SECONDARY, "net1"))
        ]
    for label, order, sink in (("ADD", calls, v.add), ("DEL", list(reversed(calls)), v.delete)):
        total = 0.0
        for binary, conf, call_env in order:
            seconds, proc = exec_plugin(binary, label, conf, call_env)
            if proc.returncode != 0:
                raise RuntimeError(f"{v.name} {label} failed: {proc.stdout!r} {proc.stderr!r}")
            total += seconds
        sink.append(total)


def run(args: argparse.Namespace, work: Path, pods: list[str]) -> list[Variant]:
    bin_dir = work / "bin"
    install(bin_dir)
    write_manifests(work)
    sock_dir = work / "run"
    sock_dir.mkdir(mode=0o700)
    sock = sock_dir / "daemon.sock"
    daemon = start_daemon(sock, args.workers)
    via_daemon = {"PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(sock)}
    try:
        variants = [
            Variant("delegates, exec'd", {"PYCNI_DAEMON": "off"}, multus=False),
            Variant("multus, exec'd", {"PYCNI_DAEMON": "off"}, multus=True),
            Variant("delegates, daemon", via_daemon, multus=False),
            Variant("multus, daemon", via_daemon, multus=True),
        ]
        if args.daemon_only:
            variants = variants[2:]
        pod_iter = iter(pods)
        for v in variants:  # warm-up: bridges, page cache, daemon workers
            lifecycle(v, work, bin_dir, next(pod_iter))
            v.add.clear()
            v.delete.clear()
        for _ in range(args.runs):
            for v in variants:
                lifecycle(v, work, bin_dir, next(pod_iter))
    finally:
        daemon.terminate()
        daemon.wait(60)
    return variants


def report(variants: list[Variant]) -> dict[str, Any]:
    """Each variant's times; for multus, the ratio to the bare delegates of the same transport
    (the goal through the daemon: <= 1.1 at the median and at p99)."""
    rows, out = [], {}
    base = {v.env.get("PYCNI_DAEMON"): v for v in variants if not v.multus}
    for v in variants:
        entry: dict[str, Any] = {}
        for label, samples in (("ADD", v.add), ("DEL", v.delete)):
            s = summary_ms(samples)
            ref = summary_ms(getattr(base[v.env.get("PYCNI_DAEMON")], label.lower().replace("del", "delete")))
            ratio = {k: s[k] / ref[k] for k in ("median", "p99")}
            entry[label] = {"ms": s, "overhead_ms": s["median"] - ref["median"], "ratio": ratio}
            rows.append(
                [
                    v.name,
                    label,
                    f"{s['median']:.1f}",
                    f"{s['p99']:.1f}",
                    f"{s['median'] - ref['median']:+.1f}",
                    f"{ratio['median']:.2f}" if v.multus else "",
                    f"{ratio['p99']:.2f}" if v.multus else "",
                ]
            )
        out[v.name] = entry
    print(table(rows, ["variant", "op", "median ms", "p99 ms", "overhead ms", "r.median", "r.p99"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="lifecycles per variant")
    parser.add_argument("--workers", type=int, default=4, help="daemon workers")
    parser.add_argument(
        "--daemon-only",
        action="store_true",
        help="only the variants through the daemon (the goal's), so that many runs take minutes",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    with node_with_pods("mb", 4 * (args.runs + 1)) as pods, tempfile.TemporaryDirectory(prefix="mmb") as tmp:
        results = report(run(args, Path(tmp), pods))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
