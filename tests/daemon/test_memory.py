"""The daemon's memory: it does not grow with requests, and stays under its bound.

Requests go straight over the socket (`wire_client`), so two thousand of them take seconds, in
a mix of what a node sends: bridge + host-local pods (ADD, CHECK, DEL: the kernel, IPAM's
files, result encoding), host-local on its own, VERSION, and configs that fail (error objects).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.process import DaemonProcess
from tests.daemon.wire_client import MixedLoad
from tests.helpers.netns import Netns
from tests.helpers.poll import wait_until

#: The daemon's memory bound with its default worker count (docs/daemon.md, "Memory").
BOUND_MIB = 150


def rss_kib(status: dict[str, Any]) -> int:
    memory = status["memory"]
    return int(memory["supervisor"]["rss_kib"] + sum(w["rss_kib"] for w in memory["workers"]))


def test_memory_does_not_grow_with_requests(
    start: Callable[..., DaemonProcess], make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """RSS (supervisor and workers) after 2,000 requests is within 5% of what it was after 200."""
    daemon = start("--workers", "2")
    node = MixedLoad(daemon.socket, make_netns, tmp_path / "ipam", pods=2)
    node.load(200)
    after_200 = daemon.status()
    node.load(1800)
    # a worker reports a request done after its caller has the answer: wait for the count
    after_2000 = wait_until(lambda: (s := daemon.status())["requests"] >= 2000 and s, what="2,000 reports")
    assert after_2000["worker_restarts"] == 0
    grown = rss_kib(after_2000) / rss_kib(after_200)
    assert grown <= 1.05, (after_200["memory"], after_2000["memory"])


def test_memory_stays_under_its_bound_with_the_default_workers(
    start: Callable[..., DaemonProcess], make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """PSS of the supervisor and every default worker, after each has served requests."""
    daemon = start()
    workers = daemon.status()["workers"]
    node = MixedLoad(daemon.socket, make_netns, tmp_path / "ipam", pods=workers)
    node.load(20 * workers)
    memory = daemon.status()["memory"]
    assert len(memory["workers"]) == workers >= 8
    assert memory["total_pss_mib"] < BOUND_MIB, memory


def mean_worker_private_kib(status: dict[str, Any]) -> float:
    workers = status["memory"]["workers"]
    return sum(int(w["private_kib"]) for w in workers) / len(workers)


@pytest.mark.usefixtures("warmable")
def test_warmed_up_workers_copy_less_of_the_supervisor(
    start: Callable[..., DaemonProcess], make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """After the same load, a worker forked after the warm-up holds less private memory than
    one forked cold: the bytecode it runs was specialised in the pages it shares (measured
    ~3 MiB less; asserted: over 1.5 MiB)."""
    private = {}
    for warm_up in ("0", "8"):
        daemon = start("--workers", "2", "--warm-up", warm_up, name=f"w{warm_up}.sock")
        MixedLoad(daemon.socket, make_netns, tmp_path / f"ipam{warm_up}", pods=2).load(200)
        private[warm_up] = mean_worker_private_kib(daemon.status())
    assert private["8"] + 1536 < private["0"], private
