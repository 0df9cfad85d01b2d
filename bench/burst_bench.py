"""Pod bursts and the daemon's memory: 64 pods at once, pycni through the daemon vs the reference.

Two scenarios, each a burst of `--pods` ADDs started at once (then their DELs, also at once):

- **bridge**: bridge + host-local, the Go reference plugins vs pycni's native forwarders
  through a daemon with its default `--workers` and `--queue`;
- **multus**: the cluster network and one secondary network (both bridge + host-local). pycni
  is one `multus` call per pod through the daemon; the reference is the Go plugins making the
  same two attachments, one call after the other per pod (the delegates multus-cni would exec).

For each: the time until every pod has its network (the last ADD answered), the median and p99
of a pod's own ADD, and the CPU (user + sys, everyone who served it: `bench.common.CpuMeter`)
per pod. Any failed call, and any caller the daemon refused or abandoned, is counted: the goal
is none. Then the memory: the daemon's PSS and RSS (supervisor and all workers, from
`/proc/<pid>/smaps_rollup`) after preload, after the bursts, and after `--requests` mixed
requests (`tests.daemon.wire_client.MixedLoad`), with a leak check: PSS after them within 5% of
PSS after the first tenth. The memory is measured in every run (each has a fresh daemon); the
worst is reported.

Run as root: `.venv/bin/python bench/burst_bench.py [--pods 64] [--repeat 3] [--requests 10000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REFERENCE_DIR, CpuMeter, exec_plugin, node_with_pods, sh, summary_ms, table
from bench.lifecycle_bench import start_daemon
from bench.multus_bench import CLUSTER, SECONDARY, bridge_conf
from pycni.daemon.client import status
from pycni.install import install
from tests.daemon.wire_client import MixedLoad
from tests.helpers.netns import Netns, create_netns, delete_netns

#: One call: (binary, config, environment).
Call = tuple[Path, dict[str, Any], dict[str, str]]
#: The spec version of every config: the reference plugins (containernetworking/plugins 1.1.1)
#: refuse 1.1.0 ("incompatible CNI versions"), so both sides speak 1.0.0.
SPEC = "1.0.0"


def network_conf(net: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    return {**bridge_conf(net, data_dir), "cniVersion": SPEC}


@dataclass
class Burst:
    """One burst's outcome."""

    all_networked_s: float
    per_pod_s: list[float]
    failures: int
    cpu_per_pod_ms: float

    def row(self, name: str, ref: Burst | None) -> list[str]:
        s = summary_ms(self.per_pod_s)
        ratio = "" if ref is None else f"{self.all_networked_s / ref.all_networked_s:.2f}"
        p99_ratio = "" if ref is None else f"{s['p99'] / summary_ms(ref.per_pod_s)['p99']:.2f}"
        return [
            name,
            f"{self.all_networked_s * 1000:.0f}",
            ratio,
            f"{s['median']:.0f}",
            f"{s['p99']:.0f}",
            p99_ratio,
            str(self.failures),
            f"{self.cpu_per_pod_ms:.1f}",
        ]


def burst(pods: list[str], calls_of: Callable[[str], list[Call]], meter: CpuMeter) -> Burst:
    """Every pod's calls started at once (one thread per pod, its calls in order)."""

    def pod_calls(pod: str) -> tuple[float, int]:
        started, failed = time.perf_counter(), 0
        for binary, conf, env in calls_of(pod):
            _, proc = exec_plugin(binary, env["CNI_COMMAND"], conf, env)
            if proc.returncode != 0:
                failed += 1
                errors.append(f"{binary.name} {env['CNI_COMMAND']}: {proc.stdout!r}")
        return time.perf_counter() - started, failed

    errors: list[str] = []

    cpu, started = meter.now(), time.perf_counter()
    with ThreadPoolExecutor(len(pods)) as pool:
        outcomes = list(pool.map(pod_calls, pods))
    elapsed = time.perf_counter() - started
    cpu_ms = (meter.now() - cpu) / len(pods) * 1000
    if errors:
        print(f"{len(errors)} calls failed, the first: {errors[0]}", file=sys.stderr)
    return Burst(elapsed, [o[0] for o in outcomes], sum(o[1] for o in outcomes), cpu_ms)


def pod_env(pod: str, command: str, ifname: str = "eth0") -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod,
        "CNI_NETNS": f"/run/netns/{pod}",
        "CNI_IFNAME": ifname,
    }


class Scenarios:
    """The calls of each scenario's pods, for the reference and for pycni."""

    def __init__(self, work: Path, sock: Path, pods: int) -> None:
        self.work = work
        self.bin = work / "bin"
        install(self.bin, launcher="native")
        self.daemon_env = {"PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(sock)}
        self.write_manifests(pods)

    def write_manifests(self, pods: int) -> None:
        """The two networks' NADs and one Pod object per pod (multus locks per pod)."""
        directory = self.work / "manifests"
        directory.mkdir()
        items: list[dict[str, Any]] = [
            {
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": net["name"], "namespace": namespace},
                "spec": {"config": json.dumps(network_conf(net, self.work / "ipam-pycni"))},
            }
            for net, namespace in ((CLUSTER, "kube-system"), (SECONDARY, "default"))
        ]
        annotations = {"k8s.v1.cni.cncf.io/networks": "storage"}
        items += [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"burst-{n}", "namespace": "default",
                                                           "annotations": annotations}}
            for n in range(pods)
        ]  # fmt: skip
        (directory / "objects.json").write_text(
            json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        )

    def bridge(self, impl: str, command: str) -> Callable[[str], list[Call]]:
        binary, cni_path, extra = self._impl(impl)
        conf = network_conf(CLUSTER, self.work / f"ipam-{impl}")
        return lambda pod: [
            (binary / "bridge", conf, {**pod_env(pod, command), "CNI_PATH": cni_path, **extra})
        ]

    def multus(self, impl: str, command: str) -> Callable[[str], list[Call]]:
        binary, cni_path, extra = self._impl(impl)
        if impl == "reference":
            nets = [(CLUSTER, "eth0"), (SECONDARY, "net1")]
            if command == "DEL":
                nets.reverse()
            return lambda pod: [
                (binary / "bridge", network_conf(net, self.work / "ipam-reference"),
                 {**pod_env(pod, command, ifname), "CNI_PATH": cni_path})
                for net, ifname in nets
            ]  # fmt: skip
        conf = {
            "cniVersion": SPEC,
            "name": "multus-cni-network",
            "type": "multus",
            "clusterNetwork": "podnet",
            "manifests": str(self.work / "manifests"),
            "cniDir": str(self.work / "multus"),
            "binDir": str(self.bin),
        }

        def calls(pod: str) -> list[Call]:
            args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=burst-{pod.rsplit('-', 1)[-1]}"
            env = {**pod_env(pod, command), "CNI_PATH": cni_path, "CNI_ARGS": args, **extra}
            return [(binary / "multus", conf, env)]

        return calls

    def _impl(self, impl: str) -> tuple[Path, str, dict[str, str]]:
        if impl == "reference":
            return REFERENCE_DIR, str(REFERENCE_DIR), {}
        return self.bin, str(self.bin), self.daemon_env


def one_run(args: argparse.Namespace, run_no: int) -> dict[str, Any]:
    """Both scenarios, reference then pycni, in fresh namespaces with a fresh daemon."""
    results: dict[str, Any] = {}
    with node_with_pods("bb", 0), tempfile.TemporaryDirectory(prefix="pbb") as tmp:
        work = Path(tmp)
        (work / "run").mkdir(mode=0o700)
        sock = work / "run" / "daemon.sock"
        daemon = start_daemon(sock, workers=None)  # the daemon's default
        try:
            scenarios = Scenarios(work, sock, args.pods)
            results["memory_after_preload"] = status(str(sock))["memory"]
            before = status(str(sock))
            for name in ("bridge", "multus"):
                results[name] = scenario(args, scenarios, name, CpuMeter(daemon.pid), run_no)
            after = status(str(sock))
            results["refused"] = sum(after["refused"].values()) - sum(before["refused"].values())
            results["abandoned"] = after["abandoned"] - before["abandoned"]
            results["workers"], results["queue"] = after["workers"], "default (128)"
            results["memory_after_bursts"] = after["memory"]
            if args.requests:
                results["memory_load"] = memory_load(sock, work, args.requests)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    return results


def scenario(args: argparse.Namespace, scenarios: Scenarios, name: str, meter: CpuMeter, run_no: int) -> Any:
    out: dict[str, Any] = {}
    for impl in ("reference", "pycni"):
        make = getattr(scenarios, name)
        with pods_of(f"b{name[0]}{impl[0]}{run_no}", args.pods) as pods:
            burst(pods[:2], make(impl, "ADD"), meter)  # warm-up: bridges, page cache
            burst(pods[:2], make(impl, "DEL"), meter)
            added = burst(pods, make(impl, "ADD"), meter if impl == "pycni" else CpuMeter())
            deleted = burst(pods, make(impl, "DEL"), meter if impl == "pycni" else CpuMeter())
        out[impl] = {"ADD": added, "DEL": deleted}
    return out


@contextmanager
def pods_of(prefix: str, count: int) -> Iterator[list[str]]:
    """`count` pod netns named `<prefix><random>-<n>` (n names the pod's Pod object); all removed."""
    made: list[Netns] = []
    try:
        for n in range(count):
            name = f"{prefix}{uuid.uuid4().hex[:6]}-{n}"
            sh("ip", "netns", "add", name)
            made.append(Netns(name))
        yield [ns.name for ns in made]
    finally:
        for ns in made:
            delete_netns(ns)


def memory_load(sock: Path, work: Path, requests: int) -> dict[str, Any]:
    """PSS and RSS after the first tenth of `requests` mixed requests and after all of them."""
    with ExitStack() as stack:

        def make_netns(prefix: str = "bm") -> Netns:
            ns = create_netns(prefix)
            stack.callback(delete_netns, ns)
            return ns

        load = MixedLoad(sock, make_netns, work / "ipam-mixed", pods=2)
        load.load(requests // 10)
        first = status(str(sock))
        load.load(requests - requests // 10)
        last = status(str(sock))
    return {
        "requests": [first["requests"], last["requests"]],
        "pss_mib": [first["memory"]["total_pss_mib"], last["memory"]["total_pss_mib"]],
        "rss_mib": [first["memory"]["total_rss_mib"], last["memory"]["total_rss_mib"]],
        "worker_restarts": last["worker_restarts"],
    }


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    header = ["scenario / impl", "all networked ms", "ratio", "pod median ms", "pod p99 ms", "p99 ratio",
              "failed", "CPU ms/pod"]  # fmt: skip
    for n, run in enumerate(runs):
        rows = []
        for name in ("bridge", "multus"):
            for command in ("ADD", "DEL"):
                ref = run[name]["reference"][command]
                rows.append(ref.row(f"{name} {command} reference", None))
                rows.append(run[name]["pycni"][command].row(f"{name} {command} pycni+daemon", ref))
        daemon = f"daemon workers {run['workers']}, queue {run['queue']}"
        print(f"\nrun {n + 1}: {args.pods} pods at once; {daemon}; refused {run['refused']}, "
              f"abandoned {run['abandoned']}")  # fmt: skip
        print(table(rows, header))
    worst = []
    for name in ("bridge", "multus"):
        all_ratio = max(r[name]["pycni"]["ADD"].all_networked_s / r[name]["reference"]["ADD"].all_networked_s
                        for r in runs)  # fmt: skip
        p99_ratio = max(
            summary_ms(r[name]["pycni"]["ADD"].per_pod_s)["p99"]
            / summary_ms(r[name]["reference"]["ADD"].per_pod_s)["p99"]
            for r in runs
        )
        failed = sum(r[name]["pycni"][c].failures for r in runs for c in ("ADD", "DEL"))
        ref_failed = sum(r[name]["reference"][c].failures for r in runs for c in ("ADD", "DEL"))
        worst.append([name, f"{all_ratio:.2f}", f"{p99_ratio:.2f}", str(failed), str(ref_failed)])
    refused = sum(r["refused"] + r["abandoned"] for r in runs)
    print(f"\nworst of {len(runs)} (pycni / reference; refused or abandoned by the daemon: {refused}):")
    print(table(worst, ["scenario", "all networked", "pod ADD p99", "failed calls", "reference failed"]))
    for n, run in enumerate(runs):
        print_memory(run, n)
    if all("memory_load" in r for r in runs):
        worst_pss = max(r["memory_load"]["pss_mib"][1] for r in runs)
        print(f"\nworst of {len(runs)}: {worst_pss} MiB PSS after all requests (bound 150 MiB)")


def print_memory(run: dict[str, Any], run_no: int) -> None:
    rows = [
        ["after preload", str(run["memory_after_preload"]["total_pss_mib"]),
         str(run["memory_after_preload"]["total_rss_mib"])],
        ["after the bursts", str(run["memory_after_bursts"]["total_pss_mib"]),
         str(run["memory_after_bursts"]["total_rss_mib"])],
    ]  # fmt: skip
    load = run.get("memory_load")
    if load:
        for n, label in enumerate(("first tenth", "all")):
            rows.append([f"after {load['requests'][n]} requests ({label})", str(load["pss_mib"][n]),
                         str(load["rss_mib"][n])])  # fmt: skip
        grown = load["pss_mib"][1] / load["pss_mib"][0]
        verdict = "no growth" if grown <= 1.05 else "GROWS"
        rows.append([f"leak check: PSS x{grown:.3f} ({verdict})", "", ""])
    workers = len(run["memory_after_bursts"]["workers"])
    print(f"\nrun {run_no + 1}: memory of the daemon (supervisor + {workers} workers), MiB; bound 150 PSS:")
    print(table(rows, ["when", "PSS", "RSS"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="run the bursts N times; report the worst")
    parser.add_argument("--requests", type=int, default=10000, help="mixed requests for the memory check")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    runs = []
    for n in range(args.repeat):
        print(f"run {n + 1} of {args.repeat}: load average {os.getloadavg()[0]:.2f}", flush=True)
        runs.append(one_run(args, n))
    report(runs, args)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2, default=lambda b: b.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
