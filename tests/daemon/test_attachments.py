"""Requests of one attachment through the daemon: never side by side, concurrent DELs all succeed.

What operators saw with `PYCNI_DAEMON=required`: a runtime that gave up on an ADD sent the DEL
while the ADD still ran in a worker; DELs retried over a DEL still running failed. Every test
here runs with the Python launcher and with the native forwarder.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.bridge.conftest import DUAL_STACK
from tests.daemon.conftest import runner
from tests.daemon.probe_plugin import read_record
from tests.daemon.process import DaemonProcess
from tests.daemon.test_launcher import NETNS, probe_conf
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns, unique
from tests.helpers.poll import wait_until


def openers(lock_dir: Path, kind: str = "attachment") -> set[int]:
    """Processes that have a lock file of `kind` open: its holder and those waiting for it."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # gone, or a file closed between the two calls
            continue
        if any(t.startswith(f"{lock_dir}/{kind}-") for t in targets):
            found.add(int(pid))
    return found


def lock_files(run_dir: Path) -> list[str]:
    directory = run_dir / "locks"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@pytest.mark.parametrize("del_mode", ["required", "off"])
def test_a_del_waits_for_the_add_still_running_in_a_worker(
    start: Callable[..., DaemonProcess], daemon_bin: Path, record: Path, tmp_path: Path, del_mode: str
) -> None:
    """The DEL through the daemon too, or run by its own executable ("off"): it waits all the same."""
    daemon = start("--workers", "2")
    run_dir, release = tmp_path / "run", tmp_path / "release"
    call = runner(daemon_bin, PYCNI_DAEMON="required", PYCNI_RUN_DIR=str(run_dir), **daemon.env)
    call_del = runner(daemon_bin, PYCNI_DAEMON=del_mode, PYCNI_RUN_DIR=str(run_dir), **daemon.env)
    with ThreadPoolExecutor(2) as pool:
        added = pool.submit(call, "probe", "ADD", probe_conf(record, hold_until=str(release)), netns=NETNS)
        wait_until(lambda: read_record(record), what="the ADD to be at work")
        deleted = pool.submit(call_del, "probe", "DEL", probe_conf(record), netns=NETNS)
        # the DEL's process has the lock file open, and has not run: it waits for the ADD's
        wait_until(lambda: len(openers(run_dir / "locks")) == 2, what="the DEL to wait for the lock")
        assert [line[0] for line in read_record(record)] == ["ADD"]
        assert not deleted.done()
        release.touch()
        added.result().ok()
        deleted.result().ok()
    assert [line[0:3:2] for line in read_record(record)] == [
        ["ADD", "daemon"],
        ["DEL", "daemon" if del_mode == "required" else "direct"],
    ]
    assert lock_files(run_dir) == []


def test_a_retried_del_runs_once_the_killed_del_s_worker_is_gone(
    start: Callable[..., DaemonProcess], daemon_bin: Path, record: Path, tmp_path: Path
) -> None:
    daemon = start("--workers", "2")
    run_dir, release = tmp_path / "run", tmp_path / "release"
    call = runner(daemon_bin, PYCNI_DAEMON="required", PYCNI_RUN_DIR=str(run_dir), **daemon.env)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(call, "probe", "DEL", probe_conf(record, hold_until=str(release)), netns=NETNS)
        wait_until(lambda: read_record(record), what="the first DEL to be at work")
        retried = pool.submit(call, "probe", "DEL", probe_conf(record), netns=NETNS)
        wait_until(lambda: len(openers(run_dir / "locks")) == 2, what="the retried DEL to wait")
        os.kill(int(read_record(record)[0][3]), signal.SIGKILL)  # the worker running the first DEL
        assert first.result().code == -signal.SIGKILL  # its caller ends as the worker did
        retried.result().ok()
    assert [line[0] for line in read_record(record)] == ["DEL", "DEL"]
    wait_until(lambda: daemon.status()["worker_restarts"] == 1, what="a replacement worker")
    # the killed holder could not remove its file; the next holder of that lock did
    assert lock_files(run_dir) == []


#: Lock files of a node's resources, which stay: its bridges and its nftables tables.
NODE_LOCKS = ("bridge-", "nftables-")


def bridge_conf(tmp_path: Path, bridge: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": "delnet",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": True,
        "ipMasqBackend": "nftables",
        "macspoofchk": True,
        "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "ranges": DUAL_STACK},
    }


def in_node(call: Runner, node: Netns, command: str, conf: dict[str, Any], pod: Netns, cid: str) -> Any:
    return call("bridge", command, conf, netns=pod.path, container_id=cid, netns_exec=node.name)


def leftovers(node: Netns, tmp_path: Path) -> dict[str, Any]:
    ipam = tmp_path / "ipam" / "delnet"
    marks = ("pycni/", ", net: ", "macspoofchk-")  # ours earlier, and the reference's format we write
    rules = [
        line for line in node.run("nft", "list", "ruleset").splitlines() if any(m in line for m in marks)
    ]
    return {
        "veths": sorted(n for n in node.link_names() if n.startswith("veth")),
        "leases": sorted(p.name for p in ipam.iterdir() if p.name[0].isdigit() or ":" in p.name)
        if ipam.is_dir()
        else [],
        "rules": rules,
    }


def test_eight_dels_of_one_attachment_at_once_all_succeed_and_leave_nothing(
    start: Callable[..., DaemonProcess],
    daemon_bin: Path,
    tmp_path: Path,
    make_netns: Callable[..., Netns],
) -> None:
    daemon = start("--workers", "4")
    node, pod = make_netns("node"), make_netns("pod")
    run_dir = tmp_path / "run"
    call = runner(daemon_bin, PYCNI_DAEMON="required", PYCNI_RUN_DIR=str(run_dir), **daemon.env)
    conf = bridge_conf(tmp_path, unique("br", 12))
    in_node(call, node, "ADD", conf, pod, pod.name).ok()
    assert all(leftovers(node, tmp_path).values())
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: in_node(call, node, "DEL", conf, pod, pod.name), range(8)))
    assert [o.code for o in outcomes] == [0] * 8, [o.stdout for o in outcomes if o.code]
    assert leftovers(node, tmp_path) == {"veths": [], "leases": [], "rules": []}
    assert all(name.startswith(NODE_LOCKS) for name in lock_files(run_dir)), lock_files(run_dir)


def test_many_lifecycles_leave_no_per_pod_lock_file(
    start: Callable[..., DaemonProcess],
    daemon_bin: Path,
    tmp_path: Path,
    make_netns: Callable[..., Netns],
) -> None:
    daemon = start("--workers", "4")
    node = make_netns("node")
    pods = [make_netns("pod") for _ in range(4)]
    run_dir = tmp_path / "run"
    call = runner(daemon_bin, PYCNI_DAEMON="required", PYCNI_RUN_DIR=str(run_dir), **daemon.env)
    conf = bridge_conf(tmp_path, unique("br", 12))

    def lifecycles(pod: Netns) -> None:
        for round_ in range(3):
            cid = f"{pod.name}-{round_}"
            added = in_node(call, node, "ADD", conf, pod, cid).ok()
            in_node(call, node, "CHECK", {**conf, "prevResult": added}, pod, cid).ok()
            in_node(call, node, "DEL", conf, pod, cid).ok()

    with ThreadPoolExecutor(len(pods)) as pool:
        list(pool.map(lifecycles, pods))
    # what is left is per node resource (the bridge, the rule tables), never per pod or per attachment
    assert {name.split("-")[0] for name in lock_files(run_dir)} == {"bridge", "nftables"}
    assert leftovers(node, tmp_path) == {"veths": [], "leases": [], "rules": []}
