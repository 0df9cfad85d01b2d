"""The pod's netns travels as a file descriptor: a daemon that cannot see the runtime's path serves it.

The DaemonSet's daemon runs in a mount namespace of its own, where containerd's netns directory
(`/var/run/netns`, or its state dir with `netns_mounts_under_state_dir`) may not be mounted at
all. Here the daemon is started the same way: in its own mount namespace, with the "runtime's"
netns directory hidden under a tmpfs and its own copy of pycni (so it cannot enter the callers'
mount namespace either, exactly as a daemon in a container image cannot).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni.daemon import launcher
from tests.daemon.conftest import runner
from tests.daemon.probe_plugin import read_record
from tests.daemon.process import DaemonProcess, start_isolated_daemon
from tests.daemon.test_launcher import probe_conf
from tests.helpers.cni import Outcome
from tests.helpers.netns import Netns, unique


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A container runtime's state dir, with its pods' netns bound under `netns/` as containerd does."""
    path = Path(tempfile.mkdtemp(prefix="pcstate"))
    (path / "netns").mkdir()
    try:
        yield path
    finally:
        for entry in (path / "netns").iterdir():
            subprocess.run(["umount", "-l", str(entry)], check=False, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def bound_netns(state_dir: Path) -> Path:
    """A new netns held only by a bind mount in the state dir (no /run/netns entry)."""
    path = state_dir / "netns" / f"cni-{uuid.uuid4()}"
    path.touch()
    subprocess.run(["unshare", f"--net={path}", "true"], check=True)
    return path


@pytest.fixture
def isolated_daemon(sock_dir: Path, state_dir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons in their own mount namespace, blind to `state_dir` and with their own code."""
    started: list[DaemonProcess] = []
    code = Path(tempfile.mkdtemp(prefix="pccode"))

    def make(*args: str) -> DaemonProcess:
        daemon = start_isolated_daemon(sock_dir, code, [state_dir], *args)
        started.append(daemon)
        return daemon

    try:
        yield make
    finally:
        for daemon in started:
            daemon.stop()
        shutil.rmtree(code, ignore_errors=True)


def test_the_daemon_cannot_see_the_runtime_s_netns_directory(
    isolated_daemon: Callable[..., DaemonProcess], state_dir: Path
) -> None:
    """The setting itself: what the other tests here prove would fail with a path-resolving daemon."""
    daemon = isolated_daemon("--workers", "1")
    pod = bound_netns(state_dir)
    seen = subprocess.run(
        ["nsenter", f"--mount=/proc/{daemon.proc.pid}/ns/mnt", "ls", "-A", str(state_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert seen.stdout.split() == [], "the daemon's mount namespace must not show the state dir"
    assert pod.exists()


@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_requests_reach_a_netns_the_daemon_has_no_mount_for(
    isolated_daemon: Callable[..., DaemonProcess],
    state_dir: Path,
    daemon_bin: Path,
    record: Path,
    command: str,
) -> None:
    daemon = isolated_daemon("--workers", "1")
    pod = bound_netns(state_dir)
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    call("probe", command, probe_conf(record), netns=str(pod), container_id="fd").ok()
    ((line),) = read_record(record)
    assert line[1:3] == ["fd", "daemon"]
    assert line[5] == str(os.stat(pod).st_ino), "the plugin must open the pod's own netns"


def test_a_path_the_caller_cannot_open_is_gone_for_del_and_an_error_for_add(
    isolated_daemon: Callable[..., DaemonProcess], state_dir: Path, daemon_bin: Path, record: Path
) -> None:
    daemon = isolated_daemon("--workers", "1")
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    missing = str(state_dir / "netns" / "cni-missing")
    call("probe", "DEL", probe_conf(record), netns=missing, container_id="gone").ok()
    regular = state_dir / "not-a-netns"
    regular.write_text("")
    failed = call("probe", "ADD", probe_conf(record), netns=str(regular), container_id="file")
    assert failed.error_code == 4, failed
    assert "not a network namespace" in failed.json["msg"]
    assert [line[5] for line in read_record(record)] == ["gone"]


def test_a_caller_that_sends_no_netns_fd_has_the_path_looked_up_in_its_mount_namespace(
    isolated_daemon: Callable[..., DaemonProcess],
    state_dir: Path,
    record: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Executables installed before the fd was sent still work: the worker hops to look."""
    daemon = isolated_daemon("--workers", "1")
    pod = bound_netns(state_dir)
    monkeypatch.setattr(launcher, "_pod_netns", lambda path: [])
    monkeypatch.setattr(launcher, "_read_stdin", lambda: json.dumps(probe_conf(record)).encode())
    env = {
        b"CNI_COMMAND": b"CHECK",
        b"CNI_CONTAINERID": b"old",
        b"CNI_NETNS": os.fsencode(pod),
        b"CNI_IFNAME": b"eth0",
        b"CNI_PATH": b"/nonexistent",
    }
    code, out = launcher.forward("probe", os.fsencode(daemon.socket), env, 5.0)
    assert code == 0, out
    ((line),) = read_record(record)
    assert line[2] == "daemon" and line[5] == str(os.stat(pod).st_ino)


def test_a_bridge_pod_in_a_state_dir_netns_through_an_isolated_daemon(
    isolated_daemon: Callable[..., DaemonProcess],
    state_dir: Path,
    daemon_bin: Path,
    make_netns: Callable[..., Netns],
    tmp_path: Path,
) -> None:
    """The real thing: a bridge + host-local pod, ADD, CHECK, DEL, all served by the daemon."""
    daemon = isolated_daemon("--workers", "1")
    node = make_netns("pcn")
    pod = bound_netns(state_dir)
    conf = {
        "cniVersion": "1.0.0",
        "name": "fdnet",
        "type": "bridge",
        "bridge": unique("br", 12),
        "isGateway": True,
        "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"), "subnet": "10.124.0.0/24"},
    }
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)

    def common(command: str, conf: dict[str, Any]) -> Outcome:
        return call("bridge", command, conf, netns=str(pod), container_id="fdpod", netns_exec=node.name)

    result = common("ADD", conf).ok()
    (ip,) = result["ips"]
    inside = subprocess.run(
        ["nsenter", f"--net={pod}", "ip", "-j", "-4", "addr", "show", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ip["address"].split("/")[0] in inside
    assert [i["sandbox"] for i in result["interfaces"] if i.get("sandbox")] == [str(pod)]
    common("CHECK", {**conf, "prevResult": result}).ok()
    common("DEL", conf).ok()
    assert {n for n in node.link_names() if n.startswith("veth")} == set()
    served = daemon.status()["latency"]
    assert served["bridge ADD"]["errors"] == 0 and served["bridge DEL"]["errors"] == 0
