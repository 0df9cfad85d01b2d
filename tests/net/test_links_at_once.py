"""`links.delete_links_at_once`: the kernel's unregistration waits overlap, failures are returned."""

from __future__ import annotations

import subprocess
import sys
import threading
from contextlib import ExitStack
from typing import Any

from pycni.net import links, netns
from tests.helpers.netns import Netns

CLONE_NEWNS = 0x00020000  # linux/sched.h


class BlockingNetlink:
    """An `Rtnl` stand-in whose RTM_DELLINK returns only when every target's has started."""

    def __init__(self, barrier: threading.Barrier, fail: bool = False) -> None:
        self.nl = self
        self.barrier = barrier
        self.fail = fail

    def change(self, msg: Any, kind: int) -> None:
        self.barrier.wait()
        if self.fail:
            raise OSError("refused")


def test_deletes_run_at_the_same_time_and_failures_are_returned_in_order() -> None:
    barrier = threading.Barrier(3, timeout=5)  # one at a time would break it: BrokenBarrierError
    targets = [(BlockingNetlink(barrier), "a"), (BlockingNetlink(barrier, fail=True), "b")]
    targets.append((BlockingNetlink(barrier), "c"))
    failures = links.delete_links_at_once(targets)  # type: ignore[arg-type]
    assert [type(f).__name__ if f else None for f in failures] == [None, "OSError", None]
    assert links.delete_links_at_once([]) == []


def test_real_veths_in_a_pod_all_go_and_a_missing_one_is_no_failure(make_netns: Any) -> None:
    pod: Netns = make_netns("lao")
    for n in range(3):
        pod.run("ip", "link", "add", f"v{n}", "type", "veth", "peer", "name", f"p{n}")
    with ExitStack() as stack:
        sockets = [stack.enter_context(netns.rtnl(pod.path)) for _ in range(4)]
        failures = links.delete_links_at_once(list(zip(sockets, ["v0", "v1", "v2", "gone"], strict=True)))
    assert failures == [None, None, None, None]
    assert pod.link_names() == {"lo"}


CHANGES_MOUNT_NAMESPACE = """
import os, threading
from pycni.net import links, netns
from tests.net.test_links_at_once import CLONE_NEWNS, BlockingNetlink

own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
for _ in range(200):  # the window after `join` is short
    barrier = threading.Barrier(4, timeout=5)
    links.delete_links_at_once([(BlockingNetlink(barrier), str(n)) for n in range(4)])
    netns.setns(own, CLONE_NEWNS)
"""


def test_the_process_can_change_its_mount_namespace_when_it_returns() -> None:
    """A daemon worker goes back to its own mount namespace after each request: setns refuses
    that (EINVAL) to a process with another thread, even one whose `join` has returned. Run in
    a process of its own: a pytest worker has threads of its own."""
    script = [sys.executable, "-c", CHANGES_MOUNT_NAMESPACE]
    run = subprocess.run(script, check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
