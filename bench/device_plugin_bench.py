"""Device plugin benchmarks: discovery time for 256 VFs and Allocate latency over the real gRPC server.

A fake sysfs tree (4 PFs x 64 VFs) stands in for hardware. Run as root from the repo root:

    .venv/bin/python bench/device_plugin_bench.py [--calls 2000] [--concurrency 32] [--json out.json]

Allocate is measured one call at a time, then with `--concurrency` calls in flight at once from
a separate client process (its own interpreter, so the clients' GIL is not the server's). Under
concurrency two figures are printed: the round trip the clients see (on 2 cores with 32
clients, mostly the scheduler's), and Allocate's own time in the server, the figure of
`pycni_device_plugin_allocate_duration_seconds` (exact samples, taken from the same hook).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_and_save
from pycni.cni.logs import setup_json_logging
from pycni.device_plugin.cli import GIL_SWITCH_INTERVAL
from pycni.device_plugin.options import Options
from pycni.device_plugin.service import DevicePluginService
from pycni.hw.discovery import discover
from pycni.hw.sysfs import SysFs
from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from pycni.k8s.pools.config import parse_config
from tests.device_plugin.kubelet import plugin
from tests.helpers.fake_sysfs import build_sriov_node

LAYOUT = tuple(
    (f"ens{n}f0", 0x3B + n, n % 2, "154c", ("iavf",) * 48 + ("vfio-pci",) * 16) for n in range(4)
)  # fmt: skip


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def bench_discovery(root: Path, runs: int) -> dict[str, float]:
    sysfs = SysFs(root)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        found = discover(sysfs)
        times.append(time.perf_counter() - start)
    assert len(found) == 256, len(found)
    median, p99 = statistics.median(times) * 1e3, percentile(times, 99) * 1e3
    return {"vfs": len(found), "median_ms": median, "p99_ms": p99}


def bench_allocate(work: Path, root: Path, calls: int) -> dict[str, float]:
    config = {"resourceList": [{"resourceName": "net", "selectors": {"drivers": ["iavf"]}},
                               {"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"]}}]}  # fmt: skip
    conf_path = work / "config.json"
    conf_path.write_text(json.dumps(config))
    (work / "registry").mkdir()  # plugin-watcher mode: no kubelet needed to serve
    opts = Options(
        config_path=conf_path,
        sysfs_root=root,
        kubelet_dir=work / "dp",
        plugins_registry_dir=work / "registry",
        devinfo_dir=Path("/dev/shm") / work.name / "devinfo",  # tmpfs, as /var/run is on a node
        use_netlink=False,
        use_udev=False,
        pod_resources_socket=None,
    )
    service = DevicePluginService(opts, parse_config(config))
    start = time.perf_counter()
    service.start()
    startup = time.perf_counter() - start
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    out: dict[str, float] = {"startup_ms": startup * 1e3}
    try:
        for name, dev_ids in (("net", ["0000:3b:02.0"]), ("dpdk", ["0000:3b:08.0", "0000:3c:08.1"])):
            stub = plugin(opts.plugins_registry_dir / f"pycni.io_{name}.sock")
            container = dp.ContainerAllocateRequest(devices_ids=dev_ids)
            request = dp.AllocateRequest(container_requests=[container])
            stub.Allocate(request, timeout=5)  # warm-up: connection set-up is not Allocate latency
            times = []
            for _ in range(calls):
                begin = time.perf_counter()
                stub.Allocate(request, timeout=5)
                times.append(time.perf_counter() - begin)
            out[f"allocate_{name}_median_ms"] = statistics.median(times) * 1e3
            out[f"allocate_{name}_p99_ms"] = percentile(times, 99) * 1e3
    finally:
        service.request_stop()
        thread.join(10)
        shutil.rmtree(opts.devinfo_dir.parent, ignore_errors=True)
    return out


CLIENTS = """
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from tests.device_plugin.kubelet import plugin
from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
sock, ids, calls, width = sys.argv[2], sys.argv[3].split(","), int(sys.argv[4]), int(sys.argv[5])
request = dp.AllocateRequest(container_requests=[dp.ContainerAllocateRequest(devices_ids=ids)])
stubs = [plugin(sock) for _ in range(width)]
for stub in stubs:
    stub.Allocate(request, timeout=5)
times, start = [], threading.Barrier(width)
def run(stub):
    start.wait()
    for _ in range(calls):
        begin = time.perf_counter()
        stub.Allocate(request, timeout=30)
        times.append(time.perf_counter() - begin)
threads = [threading.Thread(target=run, args=(stub,)) for stub in stubs]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(times))
"""


def bench_concurrent_allocate(work: Path, root: Path, calls: int, width: int) -> dict[str, float]:
    """`width` clients calling Allocate at once, `calls` each; client round trips and server time."""
    config = {"resourceList": [{"resourceName": "net", "selectors": {"drivers": ["iavf"]}},
                               {"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"]}}]}  # fmt: skip
    conf_path = work / "config-concurrent.json"
    conf_path.write_text(json.dumps(config))
    (work / "registry-c").mkdir()
    opts = Options(
        config_path=conf_path,
        sysfs_root=root,
        kubelet_dir=work / "dp-c",
        plugins_registry_dir=work / "registry-c",
        devinfo_dir=Path("/dev/shm") / (work.name + "c") / "devinfo",
        use_netlink=False,
        use_udev=False,
        pod_resources_socket=None,
    )
    service = DevicePluginService(opts, parse_config(config))
    server_times: dict[str, list[float]] = {}
    observed = service.metrics.allocate_done

    def record(resource: str, seconds: float) -> None:
        server_times.setdefault(resource.rsplit("/", 1)[-1], []).append(seconds)
        observed(resource, seconds)

    service.metrics.allocate_done = record  # type: ignore[method-assign]
    service.start()
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    out: dict[str, float] = {"concurrency": width}
    repo = str(Path(__file__).resolve().parents[1])
    try:
        for name, dev_ids in (("net", ["0000:3b:02.0"]), ("dpdk", ["0000:3b:08.0", "0000:3c:08.1"])):
            sock = str(opts.plugins_registry_dir / f"pycni.io_{name}.sock")
            argv = [sys.executable, "-c", CLIENTS, repo, sock, ",".join(dev_ids), str(calls), str(width)]
            times = json.loads(subprocess.run(argv, check=True, capture_output=True).stdout)
            own = server_times.get(name, [])[width:]  # less the clients' warm-up calls
            out[f"allocate_{name}_client_p99_ms"] = percentile(times, 99) * 1e3
            out[f"allocate_{name}_server_median_ms"] = statistics.median(own) * 1e3
            out[f"allocate_{name}_server_p99_ms"] = percentile(own, 99) * 1e3
    finally:
        service.request_stop()
        thread.join(10)
        shutil.rmtree(opts.devinfo_dir.parent, ignore_errors=True)
    return out


def log_as_the_plugin_does() -> None:
    """The JSON log lines `pycni device-plugin` writes (one per Allocate), to /dev/null instead of
    stderr: their formatting and write are part of an Allocate's time."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - kept open for the process's life
    saved, sys.stderr = sys.stderr, sink
    try:
        setup_json_logging()
    finally:
        sys.stderr = saved


def main() -> int:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)  # the server runs in this process: as `pycni device-plugin`
    log_as_the_plugin_does()
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=32, help="Allocate calls in flight at once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dpbench", dir="/tmp"))
    try:
        build_sriov_node(work / "sys", LAYOUT)
        results = {"discovery": bench_discovery(work / "sys", args.runs)}
        results["allocate"] = bench_allocate(work, work / "sys", args.calls)
        results["allocate"]["calls"] = args.calls
        per_client = max(1, args.calls // args.concurrency)
        results["allocate_concurrent"] = bench_concurrent_allocate(
            work, work / "sys", per_client, args.concurrency
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_and_save(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
