"""host-local ADD+DEL latency against the reference, with 0, 1,000 and 50,000 addresses taken.

Run as root: `.venv/bin/python bench/host_local_bench.py [--runs N] [--sizes 0,1000,50000]`.
Each size gets a /16 store pre-populated in the reference's format (files written directly,
`last_reserved_ip.0` at the last one, as after sequential allocation), one copy per
implementation. Implementations are interleaved per round so machine noise hits all alike.
"ours" is the installed executable run in-process (PYCNI_DAEMON=off); "ours+daemon" forwards
to a `pycni daemon` started for the run. The first ADD on a pre-populated store builds our
attachment index; it is reported apart ("warm-up"), the reference has no such step.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REFERENCE_DIR, exec_plugin, table
from pycni.install import install

NETWORK = "bench"
SUBNET = "10.42.0.0/16"


@dataclass
class Impl:
    name: str
    binary: Path
    env: dict[str, str]
    data_dir: Path
    samples: list[float] = field(default_factory=list)
    warmup: float = 0.0

    def conf(self) -> dict[str, Any]:
        ipam = {"type": "host-local", "dataDir": str(self.data_dir), "ranges": [[{"subnet": SUBNET}]]}
        return {"cniVersion": "1.0.0", "name": NETWORK, "ipam": ipam}

    def add_del(self, container_id: str) -> float:
        env = {
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.binary.parent),
            **self.env,
        }
        total = 0.0
        for command in ("ADD", "DEL"):
            seconds, proc = exec_plugin(self.binary, command, self.conf(), env)
            if proc.returncode != 0:
                raise RuntimeError(f"{self.name} {command} failed: {proc.stdout!r} {proc.stderr!r}")
            total += seconds
        return total


def populate(data_dir: Path, taken: int) -> None:
    """`taken` reservations in the reference's format, as if allocated one after another."""
    net_dir = data_dir / NETWORK
    net_dir.mkdir(parents=True)
    first = int(ipaddress.IPv4Address("10.42.0.2"))
    last = None
    for i in range(taken):
        last = str(ipaddress.IPv4Address(first + i))
        (net_dir / last).write_bytes(f"prefill-{i}\r\neth0".encode())
    if last is not None:
        (net_dir / "last_reserved_ip.0").write_bytes(last.encode())


@contextmanager
def daemon(sock_dir: Path) -> Iterator[dict[str, str] | None]:
    """A `pycni daemon` for the run; None (column skipped) if it does not come up."""
    from pycni.daemon.client import NoDaemon, status

    sock = sock_dir / "d.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycni", "daemon", "--socket", str(sock), "--metrics-address="],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYCNI_DAEMON_SOCKET": ""},
    )
    try:
        deadline = time.monotonic() + 20
        env: dict[str, str] | None = None
        while env is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                status(str(sock))
                env = {"PYCNI_DAEMON_SOCKET": str(sock), "PYCNI_DAEMON": "required"}
            except NoDaemon:
                time.sleep(0.05)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_size(taken: int, runs: int, impls: list[Impl]) -> None:
    template = impls[0].data_dir.parent / "template"
    populate(template, taken)
    for impl in impls:
        shutil.copytree(template, impl.data_dir)
        impl.warmup = impl.add_del("warmup")
    shutil.rmtree(template)
    for i in range(runs):
        for impl in impls:
            impl.samples.append(impl.add_del(f"run-{i}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sizes", default="0,1000,50000")
    args = parser.parse_args()
    reference = REFERENCE_DIR / "host-local"
    rows = []
    with tempfile.TemporaryDirectory(prefix="hlbench") as tmp:
        root = Path(tmp)
        install(root / "bin")
        with daemon(root) as daemon_env:
            for taken in (int(s) for s in args.sizes.split(",")):
                work = root / f"size-{taken}"
                impls = [Impl("ours", root / "bin" / "host-local", {"PYCNI_DAEMON": "off"}, work / "ours")]
                if daemon_env is not None:
                    impls.append(
                        Impl("ours+daemon", root / "bin" / "host-local", daemon_env, work / "daemon")
                    )
                if reference.exists():
                    impls.insert(0, Impl("reference", reference, {}, work / "ref"))
                bench_size(taken, args.runs, impls)
                rows += report(taken, impls)
                shutil.rmtree(work)
    print(f"host-local ADD+DEL, cniVersion 1.0.0, /16, median of {args.runs} (ms)")
    print(table(rows, ["taken", "implementation", "ADD+DEL", "p90", "warm-up", "ours/ref"]))


def report(taken: int, impls: list[Impl]) -> list[list[str]]:
    ref = next((statistics.median(i.samples) for i in impls if i.name == "reference"), None)
    rows = []
    for impl in impls:
        median = statistics.median(impl.samples)
        p90 = sorted(impl.samples)[int(0.9 * (len(impl.samples) - 1))]
        ratio = f"{median / ref:.2f}" if ref and impl.name != "reference" else "-"
        rows.append(
            [
                f"{taken:,}",
                impl.name,
                f"{median * 1000:.1f}",
                f"{p90 * 1000:.1f}",
                f"{impl.warmup * 1000:.0f}",
                ratio,
            ]
        )
    return rows


if __name__ == "__main__":
    main()
