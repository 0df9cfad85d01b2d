"""A request to the daemon from inside the test process, as a launcher sends it, without an exec.

For tests that send thousands of requests (the memory check): an exec'd launcher per request
would cost more than the requests. It speaks the protocol of `pycni.daemon.launcher` (frame,
SCM_RIGHTS namespace fds, READY/GO, the answer), with the caller's network namespace given as
a path so a test can play a node without entering it.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.daemon.protocol import DONE, DONE_BUT_UNLINK, GO, KIND_CNI, MAGIC, QUEUED, READY
from tests.helpers.netns import Netns, unique


class NotTaken(Exception):
    """The daemon refused the request or did not answer it."""


@dataclass(frozen=True)
class LeftToCaller:
    """A DONE_BUT_UNLINK answer: the exit code and stdout, and the pod link left to the caller."""

    code: int
    out: bytes
    ifname: str


def call(
    sock_path: str,
    plugin_type: str,
    env: dict[str, str],
    conf: dict[str, Any],
    node_netns: str,
    flags: tuple[bytes, ...] = (),
) -> tuple[int, bytes]:
    """(exit code, stdout) of one request run by the daemon in `node_netns`.

    With `flags` (what the caller says it can do), a DONE_BUT_UNLINK answer raises `Unlink`."""
    with _taken(sock_path, plugin_type, env, conf, node_netns, flags) as sock:
        sock.sendall(GO)
        kind = _exact(sock, 1)
        if kind not in (DONE, DONE_BUT_UNLINK):
            raise NotTaken("no DONE")
        code = int.from_bytes(_exact(sock, 4), "big")
        out = _exact(sock, int.from_bytes(_exact(sock, 4), "big"))
        if kind == DONE_BUT_UNLINK:
            ifname = _exact(sock, int.from_bytes(_exact(sock, 4), "big")).decode()
            raise Unlink(LeftToCaller(code, out, ifname))
        return code, out


def call_and_leave(
    sock_path: str,
    plugin_type: str,
    env: dict[str, str],
    conf: dict[str, Any],
    node_netns: str,
    flags: tuple[bytes, ...] = (),
) -> None:
    """Send GO, having stopped reading first: a caller gone before any answer can reach it."""
    with _taken(sock_path, plugin_type, env, conf, node_netns, flags) as sock:
        sock.shutdown(socket.SHUT_RD)
        sock.sendall(GO)


@contextmanager
def _taken(
    sock_path: str,
    plugin_type: str,
    env: dict[str, str],
    conf: dict[str, Any],
    node_netns: str,
    flags: tuple[bytes, ...],
) -> Iterator[socket.socket]:
    """The connection once a worker has taken the request (READY read), before GO."""
    stdin = json.dumps(conf).encode()
    entries = [*(f"{k}={v}".encode() for k, v in env.items()), *flags]
    header = b"\0".join([plugin_type.encode(), *entries])
    frame = MAGIC + KIND_CNI + _u32(len(header)) + _u32(len(stdin)) + header + stdin
    with ExitStack() as stack, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        paths = [node_netns, "/proc/self/ns/mnt"]
        if env.get("CNI_NETNS"):
            paths.append(env["CNI_NETNS"])
        fds = [os.open(path, os.O_RDONLY | os.O_CLOEXEC) for path in paths]
        for fd in fds:
            stack.callback(os.close, fd)
        sock.settimeout(30)
        sock.connect(sock_path)
        socket.send_fds(sock, [frame], fds)
        kind = _exact(sock, 1)
        if kind == QUEUED:
            kind = _exact(sock, 1)
        if kind != READY:
            raise NotTaken(f"answer {kind!r}: {sock.recv(4096)!r}")
        _exact(sock, 4)
        yield sock


class Unlink(Exception):
    """The daemon answered DONE_BUT_UNLINK (only to a caller that sent CALLER_UNLINKS)."""

    def __init__(self, answer: LeftToCaller) -> None:
        super().__init__(answer.ifname)
        self.answer = answer


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise NotTaken("connection closed")
        data += chunk
    return data


class MixedLoad:
    """A mix of what a node sends, straight over the socket: a node netns, a few pod netns.

    Each cycle is ten requests: a bridge + host-local pod's ADD, CHECK and DEL (the kernel,
    IPAM's files, result encoding), host-local's ADD and DEL on its own, VERSION, and configs
    that fail (error objects). Used by the memory test and `bench/burst_bench.py`.
    """

    def __init__(self, socket_path: Path, make_netns: Callable[..., Netns], data: Path, pods: int) -> None:
        self.socket_path = socket_path
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
        sock = str(self.socket_path)

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
