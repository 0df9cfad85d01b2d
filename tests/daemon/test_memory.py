"""The daemon's memory: it does not grow with requests, and stays under its bound.

Requests go straight over the socket (`wire_client`), so two thousand of them take seconds, in
a mix of what a node sends: bridge + host-local pods (ADD, CHECK, DEL: the kernel, IPAM's
files, result encoding), host-local on its own, VERSION, and configs that fail (error objects).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.daemon.process import DaemonProcess
from tests.daemon.wire_client import call
from tests.helpers.netns import Netns, unique

#: The daemon's memory bound with its default worker count (docs/daemon.md, "Memory").
BOUND_MIB = 150


class Node:
    """A node netns with a few pod netns, and the configs a mixed load uses."""

    def __init__(
        self, daemon: DaemonProcess, make_netns: Callable[..., Netns], data: Path, pods: int
    ) -> None:
        self.daemon = daemon
        self.node = make_netns("pmn")
        self.pods = [make_netns("pmp") for _ in range(pods)]
        ipam = {"type": "host-local", "dataDir": str(data), "ranges": [[{"subnet": "10.124.0.0/24"}]]}
        self.bridge = {
            "cniVersion": "1.0.0",
            "name": "memnet",
            "type": "bridge",
            "bridge": unique("brm", 12),
            "isGateway": True,
            "ipam": ipam,
        }
        self.ipam_only = {"cniVersion": "1.0.0", "name": "memipam", "ipam": ipam}

    def cycle(self, pod: Netns) -> int:
        """Ten requests: a pod's ADD/CHECK/DEL, host-local's ADD/DEL, VERSION, failures."""
        env = {"CNI_COMMAND": "", "CNI_PATH": "/nonexistent", "CNI_IFNAME": "eth0"}
        env |= {"CNI_CONTAINERID": f"{pod.name}-{uuid.uuid4().hex[:6]}", "CNI_NETNS": pod.path}
        sock = str(self.daemon.socket)

        def run(plugin: str, command: str, conf: dict[str, Any]) -> tuple[int, bytes]:
            return call(sock, plugin, {**env, "CNI_COMMAND": command}, conf, self.node.path)

        code, out = run("bridge", "ADD", self.bridge)
        assert code == 0, out
        assert run("bridge", "CHECK", {**self.bridge, "prevResult": json.loads(out)})[0] == 0
        assert run("bridge", "DEL", self.bridge)[0] == 0
        assert run("host-local", "ADD", self.ipam_only)[0] == 0
        assert run("host-local", "DEL", self.ipam_only)[0] == 0
        assert run("bridge", "VERSION", {"cniVersion": "1.0.0"})[0] == 0
        assert run("bridge", "ADD", {**self.bridge, "mtu": "x"})[0] == 1  # code 7, invalid config
        assert run("host-local", "ADD", {"cniVersion": "1.0.0", "name": "x", "ipam": {}})[0] == 1
        assert run("bridge", "DEL", {**self.bridge, "cniVersion": "9.9.9"})[0] == 1  # unsupported
        assert run("host-local", "VERSION", {"cniVersion": "0.4.0"})[0] == 0
        return 10

    def load(self, requests: int) -> None:
        """`requests` in cycles, one pod per thread (a pod's cycles never overlap)."""
        rounds = requests // 10 // len(self.pods)
        with ThreadPoolExecutor(len(self.pods)) as pool:
            done = sum(pool.map(lambda pod: sum(self.cycle(pod) for _ in range(rounds)), self.pods))
        assert done == requests


def rss_kib(status: dict[str, Any]) -> int:
    memory = status["memory"]
    return int(memory["supervisor"]["rss_kib"] + sum(w["rss_kib"] for w in memory["workers"]))


def test_memory_does_not_grow_with_requests(
    start: Callable[..., DaemonProcess], make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """RSS (supervisor and workers) after 2,000 requests is within 5% of what it was after 200."""
    daemon = start("--workers", "2")
    node = Node(daemon, make_netns, tmp_path / "ipam", pods=2)
    node.load(200)
    after_200 = daemon.status()
    node.load(1800)
    after_2000 = daemon.status()
    assert after_2000["requests"] >= 2000 and after_2000["worker_restarts"] == 0
    grown = rss_kib(after_2000) / rss_kib(after_200)
    assert grown <= 1.05, (after_200["memory"], after_2000["memory"])


def test_memory_stays_under_its_bound_with_the_default_workers(
    start: Callable[..., DaemonProcess], make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """PSS of the supervisor and every default worker, after each has served requests."""
    daemon = start()
    workers = daemon.status()["workers"]
    node = Node(daemon, make_netns, tmp_path / "ipam", pods=workers)
    node.load(20 * workers)
    memory = daemon.status()["memory"]
    assert len(memory["workers"]) == workers >= 8
    assert memory["total_pss_mib"] < BOUND_MIB, memory
