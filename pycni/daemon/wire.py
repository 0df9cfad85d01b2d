"""The daemon's end of the wire protocol whose client is `pycni.daemon.launcher`.

Frames are defined there (the launcher must stay import-free); this module reads a request,
with the caller's namespace fds passed alongside it, and writes the daemon's answers.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
from dataclasses import dataclass

from pycni.daemon.protocol import (
    CALLER_UNLINKS,
    DIED,
    DONE,
    DONE_BUT_UNLINK,
    FORWARDED,
    KIND_CNI,
    KIND_STATUS,
    MAGIC,
    MAX_HEADER,
    MAX_STDIN,
    QUEUED,
    READY,
    REFUSED,
)

#: The caller's network and mount namespaces, and the pod's netns as the caller opened it.
MAX_FDS = 3
#: magic, kind and the two lengths: what precedes a request's header.
PREFIX = len(MAGIC) + 1 + 4 + 4


class BadRequest(Exception):
    """The caller sent something that is not a request; it is refused and runs it itself."""


@dataclass(frozen=True)
class Request:
    kind: bytes
    plugin_type: str
    env: dict[str, str]
    stdin: bytes
    #: Every fd the caller attached (owned by the request: close them): its network and mount
    #: namespaces, then, if it could open CNI_NETNS, that file (a netns, unless the caller lies).
    fds: tuple[int, ...]
    #: The header's flags (`protocol.CALLER_UNLINKS`).
    flags: frozenset[bytes] = frozenset()

    @property
    def caller_unlinks(self) -> bool:
        """The caller deletes the pod's link itself when told to (`send_done_but_unlink`)."""
        return CALLER_UNLINKS in self.flags and self.pod_netns_fd is not None

    @property
    def command(self) -> str:
        return self.env.get("CNI_COMMAND", "")

    @property
    def ns_fds(self) -> tuple[int, ...]:
        """The caller's own network and mount namespaces."""
        return self.fds[:2]

    @property
    def pod_netns_fd(self) -> int | None:
        """CNI_NETNS as the caller opened it; None when it sent none."""
        return self.fds[2] if len(self.fds) > 2 else None

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def read_request(conn: socket.socket) -> Request:
    """Read one request; the first read also collects the fds the caller attached."""
    data, ancdata, flags, _ = conn.recvmsg(64 * 1024, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = _fds(ancdata)
    try:
        # CMSG_SPACE rounds up to the word size: room for 3 fds holds 4, without MSG_CTRUNC
        if flags & socket.MSG_CTRUNC or len(fds) > MAX_FDS:
            raise BadRequest("too many file descriptors attached")
        buf = bytearray(data)
        _fill(conn, buf, PREFIX)
        if bytes(buf[: len(MAGIC)]) != MAGIC:
            raise BadRequest("not a pycni request")
        kind = bytes(buf[len(MAGIC) : len(MAGIC) + 1])
        header_len = int.from_bytes(buf[len(MAGIC) + 1 : len(MAGIC) + 5], "big")
        stdin_len = int.from_bytes(buf[len(MAGIC) + 5 : PREFIX], "big")
        if kind not in (KIND_CNI, KIND_STATUS) or header_len > MAX_HEADER or stdin_len > MAX_STDIN:
            raise BadRequest("malformed or oversized request")
        _fill(conn, buf, PREFIX + header_len + stdin_len)
        if len(buf) > PREFIX + header_len + stdin_len:
            raise BadRequest("more data than the request's lengths say")
        header = bytes(buf[PREFIX : PREFIX + header_len])
        stdin = bytes(buf[PREFIX + header_len : PREFIX + header_len + stdin_len])
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    plugin_type, env = parse_header(header)
    return Request(kind, plugin_type, env, stdin, tuple(fds), header_flags(header))


def _fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return list(fds)


def _fill(conn: socket.socket, buf: bytearray, size: int) -> None:
    while len(buf) < size:
        chunk = conn.recv(min(size - len(buf), 1 << 20))
        if not chunk:
            raise BadRequest("request cut short")
        buf += chunk


def parse_header(header: bytes) -> tuple[str, dict[str, str]]:
    """The plugin type and the environment; only what a launcher forwards is taken."""
    first, *pairs = header.split(b"\0")
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(b"=")
        if sep and _forwarded(key):
            env[os.fsdecode(key)] = os.fsdecode(value)
    return os.fsdecode(first), env


def header_flags(header: bytes) -> frozenset[bytes]:
    """The header's entries without `=` after the type: what the caller can do."""
    return frozenset(entry for entry in header.split(b"\0")[1:] if entry and b"=" not in entry)


def _forwarded(key: bytes) -> bool:
    return key == b"PATH" or key.startswith(FORWARDED)  # as the launcher chooses them


def pending(conn: socket.socket) -> bool:
    """Whether the caller sent more than its request (only GO may follow it, after READY)."""
    timeout = conn.gettimeout()
    conn.setblocking(False)  # with a timeout set, Python would wait for data despite MSG_DONTWAIT
    try:
        return bool(conn.recv(1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    finally:
        conn.settimeout(timeout)


def send_ready(conn: socket.socket, timeout_s: float) -> None:
    conn.sendall(READY + int(timeout_s * 1000).to_bytes(4, "big"))


def send_refused(conn: socket.socket, reason: str, flags: int = 0) -> None:
    """Tell the caller to run the request itself; never raises (the caller may be gone)."""
    data = reason.encode()
    with contextlib.suppress(OSError):
        conn.send(REFUSED + len(data).to_bytes(4, "big") + data, flags)


def send_done(conn: socket.socket, code: int, out: bytes) -> None:
    conn.sendall(DONE + code.to_bytes(4, "big") + len(out).to_bytes(4, "big") + out)


def send_done_but_unlink(conn: socket.socket, code: int, out: bytes, ifname: str) -> None:
    """As `send_done`, and the caller deletes `ifname` in the pod's netns before it exits."""
    name = ifname.encode()
    conn.sendall(
        DONE_BUT_UNLINK
        + code.to_bytes(4, "big")
        + len(out).to_bytes(4, "big")
        + out
        + len(name).to_bytes(4, "big")
        + name
    )


def send_died(conn: socket.socket, returncode: int) -> None:
    """The worker running the caller's request died: how (`returncode` < 0 is a signal)."""
    with contextlib.suppress(OSError):
        conn.send(DIED + returncode.to_bytes(4, "big", signed=True), socket.MSG_DONTWAIT)


def send_queued(conn: socket.socket) -> None:
    """Tell a caller that waits for a busy pool that the daemon is alive and has its request."""
    with contextlib.suppress(OSError):
        conn.send(QUEUED, socket.MSG_DONTWAIT)
