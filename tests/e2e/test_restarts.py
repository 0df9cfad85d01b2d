"""The node daemon and containerd restarted under each other, and the DaemonSet's daemon that
cannot see containerd's netns directory.

Pods either start or fail cleanly and are retried as kubelet would (`Cri.sync`); once all are
removed, nothing is left on the node.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.daemon.process import DaemonProcess, start_daemon, start_isolated_daemon
from tests.e2e.conftest import E2eNode, MakeContainerd
from tests.e2e.containerd import Containerd
from tests.e2e.cri import Pod, Sandbox
from tests.e2e.test_containerd import SUBNET, assert_networked, write_conf
from tests.helpers.netns import unique
from tests.helpers.poll import wait_until

PODS = 12


class Daemons:
    """Daemons a test may kill and start again on one socket (its path known before the first)."""

    def __init__(self) -> None:
        self.sock_dir = Path(tempfile.mkdtemp(prefix="pcr"))
        self.code_dir = Path(tempfile.mkdtemp(prefix="pccode"))
        self.started: list[DaemonProcess] = []

    @property
    def socket(self) -> Path:
        return self.sock_dir / "d.sock"

    def start(self, hidden: list[Path] | None = None) -> DaemonProcess:
        if hidden is None:
            daemon = start_daemon(self.sock_dir, probe=False)
        else:
            daemon = start_isolated_daemon(self.sock_dir, self.code_dir, hidden, probe=False)
        self.started.append(daemon)
        return daemon

    def stop_all(self) -> None:
        for daemon in self.started:
            daemon.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        shutil.rmtree(self.code_dir, ignore_errors=True)


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    slot = Daemons()
    try:
        yield slot
    finally:
        slot.stop_all()


def node_env(node: E2eNode, daemons: Daemons) -> dict[str, str]:
    return {**node.plugin_env(None), "PYCNI_DAEMON_SOCKET": str(daemons.socket)}


def adds_served(daemon: DaemonProcess) -> int:
    status = daemon.try_status()
    return int(status["latency"].get("bridge ADD", {}).get("requests", 0)) if status else 0


def start_in_background(ctd: Containerd, pods: list[Pod]) -> tuple[ThreadPoolExecutor, list[Future[Sandbox]]]:
    assert ctd.cri is not None
    pool = ThreadPoolExecutor(len(pods))
    return pool, [pool.submit(ctd.cri.run, pod) for pod in pods]


def sync_all_and_clean_up(ctd: Containerd, node: E2eNode, pods: list[Pod]) -> None:
    """Every pod networked (retried as kubelet would), then every pod removed, nothing left."""
    assert ctd.cri is not None
    cri = ctd.cri
    sandboxes = [cri.sync(pod) for pod in pods]
    netns_paths = [assert_networked(ctd, s, SUBNET)[0] for s in sandboxes]
    assert sorted(cri.sandboxes()) == sorted(s.id for s in sandboxes)
    for sandbox in sandboxes:
        cri.stop_and_remove(sandbox.id)
    node.leftovers.assert_clean([s.id for s in sandboxes], netns_paths)


def test_the_daemon_killed_while_containerd_starts_pods(
    make_containerd: MakeContainerd, e2e_node: E2eNode, daemons: Daemons
) -> None:
    daemon = daemons.start()
    ctd = make_containerd("pycni", env=node_env(e2e_node, daemons))
    write_conf(ctd, "10-e2e.conflist", e2e_node.bridge_conflist(unique("e2e", 12), unique("br", 12), SUBNET))
    pods = [Pod.named(unique("dk", 10)) for _ in range(PODS)]
    pool, running = start_in_background(ctd, pods)
    with pool:
        wait_until(lambda: adds_served(daemon) >= 1, timeout=60.0, what="the daemon to serve an ADD")
        daemon.proc.kill()  # SIGKILL: workers finish what they hold, new callers fall back
        daemon.proc.wait(30)
        daemons.start()  # back on the same socket, as the DaemonSet restarts it
    outcomes = [f.exception() for f in running]
    assert all(o is None or "RunPodSandbox" in str(o) for o in outcomes), outcomes
    sync_all_and_clean_up(ctd, e2e_node, pods)


def test_containerd_killed_and_restarted_while_the_daemon_serves(
    make_containerd: MakeContainerd, e2e_node: E2eNode, e2e_daemon: DaemonProcess
) -> None:
    ctd = make_containerd("pycni", env=e2e_node.plugin_env(e2e_daemon))
    write_conf(ctd, "10-e2e.conflist", e2e_node.bridge_conflist(unique("e2e", 12), unique("br", 12), SUBNET))
    pods = [Pod.named(unique("ck", 10)) for _ in range(PODS)]
    served = adds_served(e2e_daemon)
    pool, running = start_in_background(ctd, pods)
    with pool:
        wait_until(lambda: adds_served(e2e_daemon) > served, timeout=60.0, what="the daemon to serve an ADD")
        ctd.kill()
        for future in running:
            future.exception()  # each RunPodSandbox ends: done, or cut off by the kill
    ctd.start()
    sync_all_and_clean_up(ctd, e2e_node, pods)


def test_the_daemonset_s_daemon_serves_netns_files_it_has_no_mount_for(
    make_containerd: MakeContainerd, e2e_node: E2eNode, daemons: Daemons
) -> None:
    """containerd with `netns_mounts_under_state_dir`, and a daemon in its own mount namespace
    where that state dir does not exist: every ADD is served by the daemon, none falls back."""
    env = {**node_env(e2e_node, daemons), "PYCNI_DAEMON": "required"}  # a fallback would fail
    ctd = make_containerd("pycni", netns_under_state=True, env=env)
    daemon = daemons.start(hidden=[ctd.state])
    write_conf(ctd, "10-e2e.conflist", e2e_node.bridge_conflist(unique("e2e", 12), unique("br", 12), SUBNET))
    pods = [Pod.named(unique("ms", 10)) for _ in range(3)]
    sync_all_and_clean_up(ctd, e2e_node, pods)
    assert adds_served(daemon) == 3
