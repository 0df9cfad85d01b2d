"""Pod lifecycle (bridge + host-local ADD, DEL): reference Go plugins vs pycni, direct and via the daemon.

pycni runs three ways: without the daemon (Python launcher, in-process), through the daemon with
the Python launcher, and through the daemon with the native forwarder.

Run as root: `.venv/bin/python bench/lifecycle_bench.py [--runs N] [--repeat 3] [--json out.json]
[--profile]`. Everything happens inside a throw-away "node" namespace that this process enters
(so the plugins run without an `ip netns exec` in front of them and the machine is never
touched); each pod gets its own netns. The variants are interleaved run by run, so machine
noise hits them alike. Ratios are pycni / reference for times (<= 1.0 is as fast or faster)
and pycni / reference for throughput (>= 1.0 is as fast or faster).

Beside every time it prints the CPU (user + sys) each lifecycle cost, everyone who served it
counted (`bench.common.CpuMeter`: launchers, forwarders and Go plugins, the daemon's
supervisor and workers). With `--repeat N` the whole comparison runs N times (a fresh daemon
and fresh pods each time) and the goals' figures are printed for each run and for the worst.
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
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REFERENCE_DIR, CpuMeter, exec_plugin, node_with_pods, summary_ms, table
from pycni.daemon.client import NoDaemon, status
from pycni.install import install


@dataclass
class Variant:
    name: str
    bridge: Path
    cni_path: Path
    env: dict[str, str]
    index: int
    #: Measures the CPU this variant's requests cost (the daemon's processes too, for its variants).
    meter: CpuMeter = field(default_factory=CpuMeter)
    add: list[float] = field(default_factory=list)
    delete: list[float] = field(default_factory=list)
    version: list[float] = field(default_factory=list)
    #: CPU seconds of each sequential lifecycle.
    cpu: list[float] = field(default_factory=list)
    #: Per parallelism: ADD and DEL times, lifecycles/s, CPU seconds per lifecycle.
    parallel_add: dict[int, list[float]] = field(default_factory=dict)
    parallel_delete: dict[int, list[float]] = field(default_factory=dict)
    throughput: dict[int, float] = field(default_factory=dict)
    parallel_cpu: dict[int, float] = field(default_factory=dict)

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


def start_daemon(sock: Path, workers: int | None) -> subprocess.Popen[bytes]:
    """A daemon on `sock`, with `workers` workers (None: its default), once it answers."""
    argv = [sys.executable, "-m", "pycni", "daemon", "--socket", str(sock), "--metrics-address="]
    if workers is not None:
        argv += ["--workers", str(workers)]
    proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent)
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
    via_daemon = {"PYCNI_DAEMON": "required", "PYCNI_DAEMON_SOCKET": str(sock)}
    served = CpuMeter(daemon.pid)
    try:
        variants = [
            Variant("reference", REFERENCE_DIR / "bridge", REFERENCE_DIR, {}, 0),
            Variant("pycni", bin_dir / "bridge", bin_dir, {"PYCNI_DAEMON": "off"}, 1),
            Variant("pycni+daemon", bin_dir / "bridge", bin_dir, via_daemon, 2, served),
            Variant("pycni+native", native_dir / "bridge", native_dir, via_daemon, 3, served),
        ]
        if args.no_direct:
            del variants[1]
        data = work / "ipam"
        pod_iter = iter(pods)
        for v in variants:  # warm-up: page cache, bridge creation, daemon workers
            for _ in range(3):
                lifecycle(v, data, next(pod_iter), [], [])
        for i in range(args.runs):
            for v in variants:
                if v.name == "pycni" and i % args.direct_every:
                    continue
                cpu = v.meter.now()
                lifecycle(v, data, next(pod_iter), v.add, v.delete, args.pod_lifetime)
                v.cpu.append(v.meter.now() - cpu)
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
    (a few lifecycles per second) runs one round. Each parallelism of `--parallel` in turn.
    """
    for width in args.parallel:
        done = {v.name: 0 for v in variants}
        seconds = {v.name: 0.0 for v in variants}
        cpu = {v.name: 0.0 for v in variants}
        for n in range(args.parallel_rounds):
            for v in variants:
                if v.name == "pycni" and n:
                    continue
                adds, deletes = v.parallel_add.setdefault(width, []), v.parallel_delete.setdefault(width, [])
                batch = [next(pods) for _ in range(args.parallel_lifecycles)]
                cpu_before, started = v.meter.now(), time.perf_counter()
                with ThreadPoolExecutor(width) as pool:
                    list(pool.map(lambda pod, v=v, a=adds, d=deletes: lifecycle(v, data, pod, a, d), batch))
                seconds[v.name] += time.perf_counter() - started
                cpu[v.name] += v.meter.now() - cpu_before
                done[v.name] += len(batch)
        for v in variants:
            v.throughput[width] = done[v.name] / seconds[v.name]
            v.parallel_cpu[width] = cpu[v.name] / done[v.name]


def report(variants: list[Variant], daemon_stats: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    ref = variants[0]
    rows, out = [], {}
    for v in variants:
        entry: dict[str, Any] = {"runs": len(v.add)}
        series = [("ADD", v.add, ref.add), ("DEL", v.delete, ref.delete), ("VERSION", v.version, ref.version)]
        for width in args.parallel:
            series.append((f"ADD x{width}", v.parallel_add[width], ref.parallel_add[width]))
            series.append((f"DEL x{width}", v.parallel_delete[width], ref.parallel_delete[width]))
        for label, samples, ref_samples in series:
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
        entry["throughput_per_s"] = {w: v.throughput[w] for w in args.parallel}
        entry["throughput_ratio"] = {w: v.throughput[w] / ref.throughput[w] for w in args.parallel}
        entry["cpu_ms"] = {"sequential": _mean(v.cpu) * 1000} | {
            f"x{w}": v.parallel_cpu[w] * 1000 for w in args.parallel
        }
        out[v.name] = entry
    print(table(rows, ["variant", "op", "median", "p90", "p99", "r.median", "r.p90", "r.p99"]))
    print()
    print(_throughput_table(variants, args.parallel))
    print()
    print(_cpu_table(out))
    print(_inside_daemon(daemon_stats))
    out["daemon"] = daemon_stats
    return out


def _mean(samples: list[float]) -> float:
    return sum(samples) / len(samples) if samples else 0.0


def _throughput_table(variants: list[Variant], widths: list[int]) -> str:
    ref = variants[0]
    rows = [
        [v.name, *(f"{v.throughput[w]:.1f} ({v.throughput[w] / ref.throughput[w]:.2f})" for w in widths)]
        for v in variants
    ]
    return table(rows, ["variant", *(f"lifecycles/s x{w} (ratio)" for w in widths)])


def _cpu_table(out: dict[str, Any]) -> str:
    """CPU per lifecycle (ADD + DEL), user + sys of everyone who served it, beside the reference's."""
    ref = out["reference"]["cpu_ms"]
    rows = [
        [name, *(f"{cpu[k]:.2f} ({cpu[k] / ref[k]:.2f})" for k in cpu)]
        for name, entry in out.items()
        for cpu in [entry["cpu_ms"]]
    ]
    return table(rows, ["variant", *(f"CPU ms/lifecycle {k} (ratio)" for k in ref)])


def _inside_daemon(daemon_stats: dict[str, Any]) -> str:
    """The worker-measured latency, and where the last requests' time went, per kind (means)."""
    lines = ["", "inside the daemon (worker-measured, ms):"]
    lat = daemon_stats.get("latency", {})
    for key in ("bridge ADD", "bridge DEL", "bridge VERSION"):
        if key in lat:
            lines.append(
                f"  {key}: p50 {lat[key]['p50_ms']}  p99 {lat[key]['p99_ms']}  n={lat[key]['requests']}"
            )
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for served in daemon_stats.get("recent", []):
        by_kind.setdefault(f"{served['type']} {served['command']}", []).append(served)
    for kind, served_list in sorted(by_kind.items()):
        phases = sorted({k for s in served_list for k in s if k.endswith("_ms")})
        means = ", ".join(f"{k[:-3]} {_mean([s.get(k, 0.0) for s in served_list]):.2f}" for k in phases)
        lines.append(f"  last {len(served_list)} {kind}: {means}")
    memory = daemon_stats.get("memory", {})
    if memory:
        lines.append(
            f"  memory: PSS {memory['total_pss_mib']} MiB, RSS {memory['total_rss_mib']} MiB (all processes)"
        )
    return "\n".join(lines)


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
    parser.add_argument(
        "--parallel",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[8, 32],
        help="comma-separated parallelisms of the throughput batches (default 8,32)",
    )
    parser.add_argument("--no-direct", action="store_true", help="leave out pycni without the daemon")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the whole comparison N times; report the worst"
    )
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
    variant_count = 3 if args.no_direct else 4
    direct = 0 if args.no_direct else 1  # the direct variant runs one parallel round
    rounds = (variant_count - direct) * args.parallel_rounds + direct
    parallel = len(args.parallel) * rounds * args.parallel_lifecycles
    count = variant_count * 3 + variant_count * args.runs + parallel + (11 if args.profile else 0)
    runs = []
    for n in range(args.repeat):
        if args.repeat > 1:
            print(f"\n=== run {n + 1} of {args.repeat} (load average {os.getloadavg()[0]:.2f}) ===")
        with node_with_pods("pb", count) as pods, tempfile.TemporaryDirectory(prefix="pcb") as tmp:
            variants, daemon_stats = run(args, Path(tmp), pods)
            runs.append(report(variants, daemon_stats, args))
            if args.profile and n == args.repeat - 1:
                profile(Path(tmp), pods[-11:])
    print(goals(runs, args.parallel))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


#: The goals' figures: (label, how to read it from a run's results, the goal, True when higher is better).
GOALS: list[tuple[str, Callable[[dict[str, Any]], float], float | None, bool]] = [
    ("ADD p99 x8 (ratio)", lambda r: r["ADD x8"]["ratio"]["p99"], 1.0, False),
    ("DEL p99 x8 (ratio)", lambda r: r["DEL x8"]["ratio"]["p99"], 1.0, False),
    ("DEL median (ratio)", lambda r: r["DEL"]["ratio"]["median"], 1.0, False),
    ("ADD median (ratio)", lambda r: r["ADD"]["ratio"]["median"], None, False),
    ("throughput x8 (ratio)", lambda r: r["throughput_ratio"][8], 1.3, True),
    ("throughput x32 (ratio)", lambda r: r["throughput_ratio"][32], 1.3, True),
]


def goals(runs: list[dict[str, Any]], widths: list[int]) -> str:
    """The issue's figures for the native forwarder against the reference: each run, and the worst."""
    rows = []
    for label, read, goal, higher_is_better in GOALS:
        try:
            values = [read(run["pycni+native"]) for run in runs]
        except KeyError:
            continue  # a parallelism this invocation did not run
        worst = min(values) if higher_is_better else max(values)
        met = (
            ""
            if goal is None
            else ("met" if (worst >= goal if higher_is_better else worst <= goal) else "NOT met")
        )
        goal_text = "" if goal is None else f"{'>=' if higher_is_better else '<='} {goal}"
        rows.append([label, *(f"{v:.2f}" for v in values), f"{worst:.2f}", goal_text, met])
    cpu_rows = []
    for k in runs[0]["reference"]["cpu_ms"]:
        pairs = [
            f"{run['pycni+native']['cpu_ms'][k]:.2f} vs {run['reference']['cpu_ms'][k]:.2f}" for run in runs
        ]
        cpu_rows.append([f"CPU ms/lifecycle {k}", *pairs, "", "", ""])
    header = [
        "figure (pycni+native / reference)",
        *(f"run {n + 1}" for n in range(len(runs))),
        "worst",
        "goal",
        "",
    ]
    return "\n" + table(rows + cpu_rows, header)


if __name__ == "__main__":
    sys.exit(main())
