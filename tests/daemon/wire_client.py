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
from contextlib import ExitStack
from typing import Any

from pycni.daemon.protocol import DONE, GO, KIND_CNI, MAGIC, QUEUED, READY


class NotTaken(Exception):
    """The daemon refused the request or did not answer it."""


def call(
    sock_path: str, plugin_type: str, env: dict[str, str], conf: dict[str, Any], node_netns: str
) -> tuple[int, bytes]:
    """(exit code, stdout) of one request run by the daemon in `node_netns`."""
    stdin = json.dumps(conf).encode()
    header = b"\0".join([plugin_type.encode(), *(f"{k}={v}".encode() for k, v in env.items())])
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
        sock.sendall(GO)
        if _exact(sock, 1) != DONE:
            raise NotTaken("no DONE")
        code = int.from_bytes(_exact(sock, 4), "big")
        return code, _exact(sock, int.from_bytes(_exact(sock, 4), "big"))


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
