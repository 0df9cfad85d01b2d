"""DRA driver benchmarks, against the installed `pycni dra-driver` process as kubelet drives it:

- NodePrepareResources / NodeUnprepareResources latency (median, p99) for a claim of 1 and of 4 VFs,
  over the real gRPC socket; Prepare includes reading the claim from the API server stand-in
  (HTTPS, its own CA), writing the CDI spec and the checkpoint (not flushed; Unprepare flushes).
  The CDI directory is on a tmpfs (/dev/shm) as /var/run/cdi is on a node, the checkpoint on the
  disk as kubelet's plugin directory is (`--cdi-on-disk` puts both on the disk, as before);
- the time from starting the process to the node's pool being complete in the API server, for
  256 VFs (4 PFs x 64: 48 kernel-netdev and 16 VFIO each; two slices).

The node is the tests' stand-in node (tests/dra/node.py): a fake sysfs tree, veth stand-ins for
every netdev in a network namespace, the API server and kubelet stand-ins. Run as root from the
repo root:

    .venv/bin/python bench/dra_bench.py [--claims 300] [--starts 5] [--cdi-on-disk] [--json FILE]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_and_save
from tests.dra.node import DRIVER, LAYOUT, DraNode
from tests.helpers.netns import create_netns, delete_netns
from tests.helpers.timing import percentile
from tests.meta_multus.apiserver import make_pki

BIG_LAYOUT = tuple(
    (f"ens{n}f0", 0x3B + n, n % 2, "154c", ("iavf",) * 48 + ("vfio-pci",) * 16) for n in range(4)
)  # fmt: skip


#: The devices of a claim of 1 and of 4 VFs (ens1f0's VFs 6 and 7 are VFIO).
CLAIMED = {1: ["0000-3b-02-0"], 4: ["0000-3b-02-0", "0000-3b-02-1", "0000-3b-02-6", "0000-3b-02-7"]}


def stats(samples: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(samples) * 1e3, "p99_ms": percentile(samples, 99) * 1e3}


def bench_claims(node: DraNode, size: int, count: int) -> dict[str, Any]:
    """Prepare then unprepare `count` fresh claims of `size` VFs (4: two kernel-netdev, two VFIO)."""
    devices = CLAIMED[size]
    claims = [("default", f"c{size}-{i}", node.add_claim(f"c{size}-{i}", devices)) for i in range(count + 1)]
    warm = claims.pop()
    node.kubelet.prepare(DRIVER, [warm])  # connection set-up is not Prepare latency
    node.kubelet.unprepare(DRIVER, [warm])
    prepare, unprepare = [], []
    for claim in claims:
        start = time.perf_counter()
        out = node.kubelet.prepare(DRIVER, [claim])
        prepare.append(time.perf_counter() - start)
        assert out[claim[2]].error == "", out[claim[2]].error
        start = time.perf_counter()
        node.kubelet.unprepare(DRIVER, [claim])
        unprepare.append(time.perf_counter() - start)
    return {"claims": count, "prepare": stats(prepare), "unprepare": stats(unprepare)}


def bench_start(node: DraNode, runs: int) -> dict[str, Any]:
    """Process start to the last of the pool's slices stored, for every VF of `node`."""
    wanted = len(node.hw.vfs)
    times = []
    for _ in range(runs):
        for obj in node.slices():
            node.api.cluster.store.remove("resource.k8s.io/v1", "resourceslices", obj["metadata"]["name"])
        start = time.perf_counter()
        node.start(wait=False)
        while len(node.pool_devices()) != wanted:
            if time.perf_counter() - start > 60:
                raise AssertionError(f"no complete pool after 60 s (log: {node.log})")
            time.sleep(0.002)  # the measurement's resolution
        times.append(time.perf_counter() - start)
        node.stop()
    slices = len(node.slices())
    return {"vfs": wanted, "slices": slices, "runs": runs, **stats(times)}


def tmpfs() -> Path | None:
    """/dev/shm when it is a tmpfs (as /var/run, where CDI specs live on a node), else None."""
    mounts = Path("/proc/mounts").read_text().splitlines()
    return Path("/dev/shm") if any(m.split()[1:3] == ["/dev/shm", "tmpfs"] for m in mounts) else None


def with_node(layout: Any, run: Any, cdi_on: Path | None = None) -> dict[str, Any]:
    """`run(node)` on a fresh node; its CDI directory on the file system of `cdi_on` if given."""
    work = Path(tempfile.mkdtemp(prefix="drab", dir="/tmp"))
    cdi = Path(tempfile.mkdtemp(prefix="drab-cdi", dir=cdi_on)) if cdi_on else None
    ns = create_netns("drab")
    node = None
    try:
        node = DraNode.make(work, ns, make_pki(work / "pki"), layout)
        if cdi is not None:
            node.cdi_dir.symlink_to(cdi, target_is_directory=True)
        node.kubelet.start()
        result: dict[str, Any] = run(node)
        return result
    finally:
        if node is not None:
            node.close()
        delete_netns(ns)
        shutil.rmtree(work, ignore_errors=True)
        if cdi is not None:
            shutil.rmtree(cdi, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--cdi-on-disk", action="store_true", help="CDI specs on the disk, not a tmpfs")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cdi_on = None if args.cdi_on_disk else tmpfs()

    def claims(node: DraNode) -> dict[str, Any]:
        node.start()
        return {f"claim_of_{size}": bench_claims(node, size, args.claims) for size in (1, 4)}

    results: dict[str, Any] = {"cdi_dir_on": str(cdi_on or "/tmp (disk)")}
    results |= with_node(LAYOUT, claims, cdi_on)
    results["start_to_slices_published"] = with_node(BIG_LAYOUT, lambda node: bench_start(node, args.starts))
    print_and_save(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
