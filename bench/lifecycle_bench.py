"""Pod lifecycle (bridge + host-local ADD, DEL): reference Go plugins vs pycni, direct and via the daemon.

pycni runs three ways: without the daemon (Python launcher, in-process), through the daemon with
the Python launcher, and through the daemon with the native forwarder.

Run as root: `.venv/bin/python bench/lifecycle_bench.py [--runs N] [--json out.json] [--profile]`.
Everything happens inside a throw-away "node" namespace that this process enters (so the
plugins run without an `ip netns exec` in front of them and the machine is never touched);
each pod gets its own netns. The variants are interleaved run by run, so machine
noise hits them alike. Ratios are pycni / reference for times (<= 1.0 is as fast or faster)
and pycni / reference for throughput (>= 1.0 is as fast or faster).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REFERENCE_DIR, exec_plugin, node_with_pods, summary_ms, table
from pycni.daemon.client import NoDaemon, status
from pycni.install import install


@dataclass
class Variant:
    name: str
    bridge: Path
    cni_path: Path
    env: dict[str, str]
    index: int
    add: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)
    version: list[float] = field(default_factory=list)
    parallel_add: list[float] = field(default_factory=list)
    parallel_delete: list[float] = field(default_factory=list)
    throughput: float = 0.0

    def conf(self, data_dir: Path) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": f"bench{self.index}",
            "type": "bridge",
            "bridge": f"cnibench{self.index}",
            "isGateway": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(data_dir / self.name),
                "ranges": [[{"subnet": f"10.{200 + self.index}.0.0/16"}]],
            },
        }


def lifecycle(
    v: Variant, data_dir: Path, pod: str, adds: list[float], deletes: list[float], lifetime: float = 0.0
) -> None:
    """ADD then DEL of one pod; `lifetime` seconds between them (untimed), as a pod lives a while.

    A DEL right after its ADD also waits for kernel work the ADD left behind (RCU callbacks
    that the veth's unregistration must drain), so the faster the ADD, the dearer its DEL.
    """
    env = {
        **v.env,
        "CNI_CONTAINERID": pod,
        "CNI_NETNS": f"/run/netns/{pod}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(v.cni_path),
    }
    conf = v.conf(data_dir)
    seconds, proc = exec_plugin(v.bridge, "ADD", conf, env)
    result = json.loads(proc.stdout) if proc.returncode == 0 else None
    if not result or not result.get("ips"):
        raise RuntimeError(f"{v.name} ADD failed ({proc.returncode}): {proc.stdout!r} {proc.stderr!r}")
    adds.append(seconds)
    if lifetime:
        time.sleep(lifetime)
    seconds, proc = exec_plugin(v.bridge, "DEL", conf, env)
    if proc.returncode != 0:
        raise RuntimeError(f"{v.name} DEL failed ({proc.returncode}): {proc.stdout!r} {proc.stderr!r}")
    deletes.append(seconds)


def version(v: Variant) -> None:
    seconds, proc = exec_plugin(v.bridge, "VERSION", {"cniVersion": "1.0.0"}, v.env)
    if proc.returncode != 0:
        raise RuntimeError(f"{v.name} VERSION failed: {proc.stdout!r}")
    v.version.append(seconds)


def start_daemon(sock: Path, workers: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pycni",
            "daemon",
            "--socket",
            str(sock),
            "--workers",
            str(workers),
            "--metrics-address=",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            status(str(sock))
            return proc
        except NoDaemon:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start") from None
            time.sleep(0.05)


def run(args: argparse.Namespace, work: Path, pods: list[str]) -> tuple[list[Variant], dict[str, Any]]:
    bin_dir = work / "bin"
    install(bin_dir, launcher="python")
    native_dir = work / "native"
    install(native_dir, launcher="native")
    sock_dir = work / "run"
    sock_dir.mkdir(mode=0o700)
    sock = sock_dir / "daemon.sock"
    daemon = start_daemon(sock, args.workers)
    try:
        variants = [
            Variant("reference", REFERENCE_DIR / "bridge", REFERENCE_DIR, {}, 0),
            Variant("pycni", bin_dir / "bridge", bin_dir, {"PYCNI_DAEMON": "off"}, 1),
            Variant(
                "pycni+daemon",
                bin_dir / "bridge",
                bin_dir,
                {"PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(sock)},
                2,
            ),
            Variant(
                "pycni+native",
                native_dir / "bridge",
                native_dir,
                {"PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(sock)},
                3,
            ),
        ]
        data = work / "ipam"
        pod_iter = iter(pods)
        for v in variants:  # warm-up: page cache, bridge creation, daemon workers
            for _ in range(3):
                lifecycle(v, data, next(pod_iter), [], [])
        for i in range(args.runs):
            for v in variants:
                if v.name == "pycni" and i % args.direct_every:
                    continue
                lifecycle(v, data, next(pod_iter), v.add, v.delete, args.pod_lifetime)
                version(v)
        parallel_rounds(args, variants, data, pod_iter)
        daemon_stats = status(str(sock))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    return variants, daemon_stats


def parallel_rounds(
    args: argparse.Namespace, variants: list[Variant], data: Path, pods: Iterator[str]
) -> None:
    """Throughput: batches of `--parallel-lifecycles`, `--parallel-rounds` per variant, interleaved.

    A batch takes well under a second, so a burst of other work on the machine could sink one
    variant's single batch; interleaved rounds spread it over all of them. The direct variant
    (a few lifecycles per second) runs one round.
    """
    done = {v.name: 0 for v in variants}
    seconds = {v.name: 0.0 for v in variants}
    for n in range(args.parallel_rounds):
        for v in variants:
            if v.name == "pycni" and n:
                continue
            batch = [next(pods) for _ in range(args.parallel_lifecycles)]
            started = time.perf_counter()
            with ThreadPoolExecutor(args.parallel) as pool:
                list(
                    pool.map(
                        lambda pod, v=v: lifecycle(v, data, pod, v.parallel_add, v.parallel_delete), batch
                    )
                )
            seconds[v.name] += time.perf_counter() - started
            done[v.name] += len(batch)
    for v in variants:
        v.throughput = done[v.name] / seconds[v.name]


def report(variants: list[Variant], daemon_stats: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    ref = variants[0]
    rows, out = [], {}
    for v in variants:
        entry: dict[str, Any] = {"runs": len(v.add)}
        for label, samples, ref_samples in (
            ("ADD", v.add, ref.add),
            ("DEL", v.delete, ref.delete),
            ("VERSION", v.version, ref.version),
            (f"ADD x{args.parallel}", v.parallel_add, ref.parallel_add),
            (f"DEL x{args.parallel}", v.parallel_delete, ref.parallel_delete),
        ):
            s, r = summary_ms(samples), summary_ms(ref_samples)
            ratios = {k: s[k] / r[k] for k in s}
            entry[label] = {"ms": s, "ratio": ratios}
            rows.append(
                [
                    v.name,
                    label,
                    *(f"{s[k]:.1f}" for k in ("median", "p90", "p99")),
                    *(f"{ratios[k]:.2f}" for k in ("median", "p90", "p99")),
                ]
            )
        entry["throughput_per_s"] = v.throughput
        entry["throughput_ratio"] = v.throughput / ref.throughput
        out[v.name] = entry
    print(table(rows, ["variant", "op", "median", "p90", "p99", "r.median", "r.p90", "r.p99"]))
    print()
    print(
        table(
            [[v.name, f"{v.throughput:.1f}", f"{v.throughput / ref.throughput:.2f}"] for v in variants],
            ["variant", f"lifecycles/s ({args.parallel} parallel)", "ratio"],
        )
    )
    lat = daemon_stats.get("latency", {})
    print("\ninside the daemon (worker-measured, ms):")
    for key in ("bridge ADD", "bridge DEL", "bridge VERSION"):
        if key in lat:
            print(f"  {key}: p50 {lat[key]['p50_ms']}  p99 {lat[key]['p99_ms']}  n={lat[key]['requests']}")
    out["daemon"] = daemon_stats
    return out


def profile(work: Path, pods: list[str]) -> None:
    """cProfile of the plugin code a worker runs for one ADD and one DEL (no launcher, no socket)."""
    import cProfile
    import io
    import pstats

    from pycni import registry
    from pycni.daemon.preload import preload

    preload()
    v = Variant("profile", Path("-"), work / "bin", {}, 4)
    conf = json.dumps(v.conf(work / "ipam")).encode()
    prof = cProfile.Profile()
    for n, pod in enumerate(pods):
        env = {
            "CNI_CONTAINERID": pod,
            "CNI_NETNS": f"/run/netns/{pod}",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(work / "bin"),
        }
        for command in ("ADD", "DEL"):
            if n:
                prof.enable()
            code = registry.run("bridge", {**env, "CNI_COMMAND": command}, io.BytesIO(conf), io.StringIO())
            prof.disable()
            assert code == 0
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(30)
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    print(f"\nprofile of {len(pods) - 1} in-process ADD+DEL (what a daemon worker runs):")
    print(text.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="sequential lifecycles per variant")
    parser.add_argument(
        "--direct-every",
        type=int,
        default=5,
        help="run pycni without the daemon only every Nth round (it is slow)",
    )
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--parallel-lifecycles", type=int, default=64, help="lifecycles per parallel batch")
    parser.add_argument("--parallel-rounds", type=int, default=4, help="parallel batches per variant")
    parser.add_argument("--workers", type=int, default=8, help="daemon workers")
    parser.add_argument(
        "--pod-lifetime",
        type=float,
        default=0.0,
        help="seconds between a pod's ADD and its DEL in the sequential runs, untimed "
        "(default 0: DEL right after ADD; the parallel runs always use 0)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", action="store_true", help="profile in-process ADD/DEL afterwards")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    parallel = (3 * args.parallel_rounds + 1) * args.parallel_lifecycles
    count = 4 * 3 + 4 * args.runs + parallel + (11 if args.profile else 0)
    with node_with_pods("pb", count) as pods, tempfile.TemporaryDirectory(prefix="pcb") as tmp:
        variants, daemon_stats = run(args, Path(tmp), pods)
        results = report(variants, daemon_stats, args)
        if args.profile:
            profile(Path(tmp), pods[-11:])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
