"""Small helpers shared by the benchmarks: timing exec'd plugins, percentiles, tables."""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from tests.helpers.netns import enter_netns
from tests.helpers.timing import percentile

REFERENCE_DIR = Path("/usr/lib/cni")


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


class AddDelSamples(Protocol):
    name: str
    add: list[float]
    delete: list[float]


def add_del_report(chosen: Sequence[AddDelSamples], title: str) -> dict[str, Any]:
    """Print each variant's ADD and DEL median, p90 and p99 (ms) under `title`; the same as JSON."""
    rows, out = [], {}
    for v in chosen:
        add, delete = summary_ms(v.add), summary_ms(v.delete)
        out[v.name] = {"add_ms": add, "del_ms": delete, "runs": len(v.add)}
        rows.append([v.name, *(f"{s[k]:.1f}" for s in (add, delete) for k in ("median", "p90", "p99"))])
    print(f"{title}, ms ({len(chosen[0].add)} runs each, interleaved)")
    print(table(rows, ["variant", "ADD med", "ADD p90", "ADD p99", "DEL med", "DEL p90", "DEL p99"]))
    return out


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@contextmanager
def node_with_pods(prefix: str, count: int) -> Iterator[list[str]]:
    """A throw-away "node" netns this process enters, and `count` pod netns names; all removed after.

    Entering the node means the plugins run there without an `ip netns exec` in front of them,
    and the machine's own network is never touched. The names carry this process's pid: a bench
    killed before its `finally` (SIGKILL, or SIGTERM from `timeout`, which ends Python without
    unwinding) leaves netns files behind, and the next bench of the same prefix removes those
    whose creator is dead. SIGTERM is turned into an exit that unwinds, so it removes its own.
    """
    remove_orphans(prefix)
    tag = f"{os.getpid()}-"
    node = f"{prefix}n{tag}{uuid.uuid4().hex[:8]}"
    pods = [f"{prefix}p{tag}{uuid.uuid4().hex[:10]}" for _ in range(count)]
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        for ns in (node, *pods):
            sh("ip", "netns", "add", ns)
        enter_netns(f"/run/netns/{node}")
        sh("ip", "link", "set", "lo", "up")
        yield pods
    finally:
        for ns in [*pods, node]:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def remove_orphans(prefix: str) -> None:
    """Remove the netns a bench of `prefix` made and could not remove: its pid no longer runs."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return
    for name in names:
        rest = name[len(prefix) :] if name.startswith(prefix) else ""
        pid, tagged, _ = rest[1:].partition("-")
        if rest[:1] in ("n", "p") and tagged and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def print_and_save(results: dict[str, Any], path: Path | None) -> None:
    """Results as indented JSON on stdout, and into `path` (parents made) when one is given."""
    text = json.dumps(results, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


class CpuMeter:
    """CPU seconds (user + sys) spent serving requests, by whoever serves them.

    Two sources, both precise to the microsecond: the bench's reaped children (`getrusage
    (RUSAGE_CHILDREN)`: every exec'd launcher, native forwarder and Go plugin, and what those
    reaped in turn, such as the Go bridge's host-local), and, with a daemon, its supervisor and
    every worker, read live from `/proc/<pid>/schedstat` (time on a CPU, user and kernel),
    plus the children they reaped (`/proc/<pid>/stat`). The bench's own threads are not
    counted: they play kubelet. Kernel work done outside the callers' context (RCU callbacks,
    kworkers) is not counted for either implementation.
    """

    def __init__(self, daemon_pid: int | None = None) -> None:
        self.daemon_pid = daemon_pid

    def now(self) -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = usage.ru_utime + usage.ru_stime
        if self.daemon_pid is not None:
            total += sum(_on_cpu(pid) for pid in (self.daemon_pid, *daemon_children(self.daemon_pid)))
        return total


def daemon_children(pid: int) -> list[int]:
    """The direct children of `pid` (a daemon's workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


_TICK = os.sysconf("SC_CLK_TCK")


def _on_cpu(pid: int) -> float:
    """Seconds `pid` has run (schedstat, nanoseconds) plus its reaped children's (stat, ticks)."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            ran = int(f.read().split()[0]) / 1e9
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return 0.0
    return ran + (int(fields[13]) + int(fields[14])) / _TICK  # cutime, cstime
