"""A bridge DEL whose pod link is deleted by its caller (the native forwarder), not by a worker.

Deleting a veth waits ~20 ms in the kernel without a CPU; left to the caller, that wait no longer
holds one of the daemon's few workers. These tests show the worker leaves exactly that step (the
IP is already released when it answers), that the forwarder takes it, that a caller gone before
the answer has the link deleted by the worker after all, and that a link the forwarder cannot
delete ends as an error, never as a silent success.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycni.daemon import wire, worker
from pycni.daemon.protocol import CALLER_UNLINKS, KIND_CNI, UNLINK_FAILED
from pycni.registry import PLUGINS
from tests.daemon.conftest import runner
from tests.daemon.process import DaemonProcess
from tests.daemon.wire_client import Unlink, call, call_and_leave
from tests.helpers.netns import Netns, unique
from tests.helpers.poll import wait_until


def bridge_conf(tmp_path: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "unlinknet",
        "type": "bridge",
        "bridge": unique("bru", 12),
        "isGateway": True,
        "ipam": {
            "type": "host-local",
            "dataDir": str(tmp_path / "ipam"),
            "ranges": [[{"subnet": "10.126.0.0/24"}]],
        },
    }


def cni_env(pod: Netns, command: str, ifname: str = "eth0") -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": pod.name,
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/nonexistent",
    }


def native(bin_dir: Path) -> bool:
    """The executables are native forwarders (the ones that delete a link left to them)."""
    return (bin_dir / "bridge").read_bytes()[:4] == b"\x7fELF"


def reservations(tmp_path: Path) -> list[str]:
    return [p.name for p in (tmp_path / "ipam" / "unlinknet").iterdir() if p.name[0].isdigit()]


@dataclass(frozen=True)
class Added:
    """A one-worker daemon, a node, and a pod attached to a bridge on it (sent over the wire)."""

    daemon: DaemonProcess
    node: Netns
    pod: Netns
    conf: dict[str, Any]

    @property
    def sock(self) -> str:
        return str(self.daemon.socket)

    def send(self, command: str, **kwargs: Any) -> tuple[int, bytes]:
        return call(self.sock, "bridge", cni_env(self.pod, command), self.conf, self.node.path, **kwargs)


@pytest.fixture
def added(start: Callable[..., DaemonProcess], make_netns: Callable[..., Netns], tmp_path: Path) -> Added:
    pod = Added(start("--workers", "1"), make_netns("pun"), make_netns("pup"), bridge_conf(tmp_path))
    assert pod.send("ADD")[0] == 0
    assert len(reservations(tmp_path)) == 1
    return pod


def test_the_worker_leaves_only_the_pod_link_to_a_caller_that_can_delete_it(
    added: Added, tmp_path: Path
) -> None:
    with pytest.raises(Unlink) as left:
        added.send("DEL", flags=(CALLER_UNLINKS,))
    assert (left.value.answer.code, left.value.answer.out, left.value.answer.ifname) == (0, b"", "eth0")
    assert "eth0" in added.pod.link_names()  # left to us: the worker did not wait for its deletion
    assert reservations(tmp_path) == []  # everything else is done: the address is free
    # the one worker is free for the next request while the link is still ours to delete
    assert added.send("VERSION")[0] == 0
    recent = [r for r in added.daemon.status()["recent"] if r["command"] == "DEL"]
    assert recent[-1]["left_to_caller"] == "eth0"

    # a caller that did not say it can (the Python launcher, an older forwarder): deleted here
    assert added.send("DEL") == (0, b"")
    assert "eth0" not in added.pod.link_names()
    assert not [name for name in added.node.link_names() if name.startswith("veth")]


def test_only_a_del_of_a_type_that_ends_with_its_pod_link_is_left_to_the_caller() -> None:
    def request(plugin_type: str, command: str, flags: frozenset[bytes], fds: int = 3) -> wire.Request:
        env = {"CNI_COMMAND": command, "CNI_NETNS": "/run/netns/x"}
        return wire.Request(KIND_CNI, plugin_type, env, b"", tuple(range(100, 100 + fds)), flags)

    caller_can = frozenset({CALLER_UNLINKS})
    assert {t for t in PLUGINS if worker._caller_may_unlink(request(t, "DEL", caller_can))} == {
        "bridge",
        "vxlan",
    }
    assert not worker._caller_may_unlink(request("bridge", "ADD", caller_can))
    assert not worker._caller_may_unlink(request("bridge", "DEL", frozenset()))
    assert not worker._caller_may_unlink(request("bridge", "DEL", caller_can, fds=2))  # no pod netns sent
    assert wire.header_flags(b"bridge\0CNI_COMMAND=DEL\0" + CALLER_UNLINKS) == caller_can
    assert wire.parse_header(b"bridge\0CNI_COMMAND=DEL\0" + CALLER_UNLINKS) == (
        "bridge",
        {"CNI_COMMAND": "DEL"},
    )


def test_a_caller_gone_before_the_answer_has_the_link_deleted_by_the_worker(added: Added) -> None:
    env = cni_env(added.pod, "DEL")
    call_and_leave(added.sock, "bridge", env, added.conf, added.node.path, flags=(CALLER_UNLINKS,))
    wait_until(lambda: "eth0" not in added.pod.link_names(), timeout=10, what="the worker deleting eth0")
    served = added.daemon.status
    wait_until(lambda: served()["latency"].get("bridge DEL", {}).get("requests") == 1, timeout=10)
    assert not [name for name in added.node.link_names() if name.startswith("veth")]


def test_the_native_forwarder_deletes_the_link_left_to_it(
    start: Callable[..., DaemonProcess],
    daemon_bin: Path,
    make_netns: Callable[..., Netns],
    tmp_path: Path,
) -> None:
    """Both launchers end a DEL with the link gone; the native one by deleting it itself."""
    daemon = start("--workers", "1")
    node, pod = make_netns("pun"), make_netns("pup")
    conf = bridge_conf(tmp_path)
    run = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    common: dict[str, Any] = {"netns": pod.path, "container_id": pod.name, "netns_exec": node.name}
    run("bridge", "ADD", conf, **common).ok()
    assert run("bridge", "DEL", conf, **common).code == 0
    assert "eth0" not in pod.link_names()
    assert not [name for name in node.link_names() if name.startswith("veth")]
    assert reservations(tmp_path) == []
    (served,) = [r for r in daemon.status()["recent"] if r["command"] == "DEL"]
    assert served.get("left_to_caller") == ("eth0" if native(daemon_bin) else None)
    assert run("bridge", "DEL", conf, **common).code == 0  # and again: nothing left to delete


def test_a_link_the_forwarder_cannot_delete_is_an_error_not_a_success(
    start: Callable[..., DaemonProcess],
    daemon_bin: Path,
    make_netns: Callable[..., Netns],
    tmp_path: Path,
) -> None:
    """The loopback cannot be deleted (EOPNOTSUPP): required mode prints our error; otherwise
    the DEL is replayed in-process and fails there as it would have in the worker."""
    daemon = start("--workers", "1")
    node, pod = make_netns("pun"), make_netns("pup")
    conf = bridge_conf(tmp_path)
    common: dict[str, Any] = {
        "netns": pod.path,
        "container_id": pod.name,
        "netns_exec": node.name,
        "ifname": "lo",
    }
    required = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)("bridge", "DEL", conf, **common)
    assert required.code != 0
    if native(daemon_bin):
        assert required.stdout.encode() == UNLINK_FAILED
    else:
        assert "pod interface removal" in required.stdout  # the worker's own error
    replayed = runner(daemon_bin, PYCNI_DAEMON="auto", **daemon.env)("bridge", "DEL", conf, **common)
    assert replayed.code != 0 and "pod interface removal" in replayed.stdout  # as the worker's
    assert "lo" in pod.link_names()
