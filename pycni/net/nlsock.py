"""A synchronous rtnetlink socket: one per namespace per request, pyroute2's messages on it.

pyroute2 0.9's `IPRoute` is a synchronous facade over its asyncio socket: every call runs an
event loop to completion, and opening one costs about a millisecond. On a pod's ADD path that
was a quarter of the plugin's time. The kernel answers a netlink request in the sender's own
`send()`, so nothing here needs an event loop: send the message, read until the answer is
complete. Encoding and decoding are pyroute2's (`ifinfmsg`, `ifaddrmsg`, `rtmsg` and its
`MarshalRtnl`) with two exceptions measured on every pod's path, where pyroute2's generic codec
cost more CPU than the kernel's work: this module reads the framing itself (an acknowledgement
needs no decoding), and `links` packs its fixed-shape requests and reads link answers directly
(`link_request`, `parse_link`; tests hold both byte for byte and field for field equal to
pyroute2's). Kernel errors surface as pyroute2's `NetlinkError`, decoded by pyroute2: judged by
errno here (`tolerating`), mapped to a spec error by `pycni.cni.errors.to_error` when nobody
expected it. Each `send()` is timed as kernel time (`pycni.cni.timing`) for `--status`.

`Rtnl` is what `pycni.net.netns.rtnl` hands out, and the one handle type every kernel helper
takes. It has no catch-all: the typed helpers (`links`, `addresses`, `routes`, ...) use its
synchronous socket, and the few requests they do not cover (bridge ports, FDB entries, a PF's VF
settings, route deletion) ask for pyroute2's full `IPRoute` by name, `Rtnl.pyroute2()`, opened
lazily in the same namespace. Only modules of `pycni.net` call it, so what pyroute2 leaves untyped
stays inside this package and `mypy --strict` checks every kernel call made from outside it.

`tolerating` is the one place a kernel refusal (`NetlinkError`) is caught and judged by its
errno; `dump` retries a dump a change interrupted.
"""

from __future__ import annotations

import errno as errno_codes
import os
import socket
import struct
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

from pyroute2.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    nlmsg,
)
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from pycni.cni import timing
from pycni.cni.errors import InternalError

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NETLINK_EXT_ACK = 11  # linux/netlink.h: errors carry the kernel's message
SOL_NETLINK = 270
NLM_F_DUMP_INTR = 0x10  # a dump raced with a change; its content may be inconsistent
RECV_BUFFER = 1 << 16  # the kernel's dump skbs are at most 32 KiB; a get answer fits too
MAX_MESSAGE = 1 << 20  # one answer larger than this is refused rather than buffered
DUMP_RETRIES = 5
NLMSG_HEADER = struct.Struct("=IHHII")  # linux/netlink.h nlmsghdr: length, type, flags, seq, pid
ERROR_CODE = struct.Struct("=i")  # nlmsgerr.error (and NLMSG_DONE's): 0 or a negative errno
NLA = struct.Struct("=HH")  # linux/netlink.h nlattr: length, type
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER


#: A request: a pyroute2 message (encoded here), or a message's body already packed (the bytes
#: after the nlmsghdr, which is added here): the few fixed-shape link requests of every pod's
#: path (`links.link_request`), where pyroute2's encoder cost more than the kernel's work.
Request: TypeAlias = "nlmsg | bytes"


class NetlinkSocket:
    """A NETLINK_ROUTE socket bound in the namespace the calling thread is in when it is made."""

    def __init__(self) -> None:
        kind = socket.SOCK_RAW | socket.SOCK_CLOEXEC
        self.sock = socket.socket(socket.AF_NETLINK, kind, socket.NETLINK_ROUTE)
        try:
            self.sock.bind((0, 0))
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            self.sock.close()
            raise
        self.marshal = MarshalRtnl()
        self.seq = 0
        self.buffer = bytearray(RECV_BUFFER)

    def close(self) -> None:
        self.sock.close()

    def change(self, msg: Request, msg_type: int, flags: int = 0) -> None:
        """Send a request that changes something and wait for the kernel's acknowledgement."""
        self._exchange(msg, msg_type, NLM_F_REQUEST | NLM_F_ACK | flags)

    def get(self, msg: Request, msg_type: int) -> nlmsg:
        """One object, looked up by the kernel (RTM_GETLINK by name or index, RTM_GETROUTE)."""
        return self._decoded(self.get_raw(msg, msg_type))

    def get_raw(self, msg: Request, msg_type: int) -> bytes:
        """`get`, the answer undecoded (nlmsghdr and all), for a caller with its own decoder."""
        answer = self._exchange(msg, msg_type, NLM_F_REQUEST)
        if not answer:
            raise NetlinkError(0, "the kernel sent no answer")
        return answer[0]

    def dump(self, msg: Request, msg_type: int) -> list[nlmsg]:
        """Every object of a kind; `NetlinkDumpInterrupted` if a change raced with the dump."""
        return [self._decoded(raw) for raw in self.dump_raw(msg, msg_type)]

    def dump_raw(self, msg: Request, msg_type: int) -> list[bytes]:
        """`dump`, the answers undecoded."""
        return self._exchange(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)

    def _decoded(self, raw: bytes) -> nlmsg:
        """One message decoded by pyroute2 (its message class by type, as `IPRoute` would)."""
        return next(iter(self.marshal.parse(raw)))

    def _exchange(self, msg: Request, msg_type: int, flags: int) -> list[bytes]:
        self.seq += 1
        if isinstance(msg, bytes):
            data = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(msg), msg_type, flags, self.seq, 0) + msg
        else:
            header = msg["header"]
            header["type"] = msg_type
            header["flags"] = flags
            header["sequence_number"] = self.seq
            header["pid"] = 0
            msg.encode()
            data = msg.data
        started = timing.start()  # the kernel does the request's work inside send()
        try:
            self.sock.send(data)
        finally:
            timing.stop(timing.KERNEL, started)
        return self._answer(self.seq, multi=bool(flags & (NLM_F_ACK | NLM_F_DUMP)))

    def _answer(self, seq: int, multi: bool) -> list[bytes]:
        """Messages up to the end of the answer to `seq`: ACK, DONE, an error, or the single reply.

        The framing is read here (`nlmsghdr`); pyroute2 decodes only what a caller asks for and
        the kernel's errors (with their extended-ack message): an acknowledgement, most of a
        request's answers, needs no decoding at all.
        """
        out: list[bytes] = []
        interrupted = False
        while True:
            data = self._recv()
            offset = 0
            while offset + NLMSG_HEADER.size <= len(data):
                length, kind, flags, msg_seq, _ = NLMSG_HEADER.unpack_from(data, offset)
                if length < NLMSG_HEADER.size or offset + length > len(data):
                    raise NetlinkError(0, "malformed netlink answer")
                raw = data[offset : offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue  # an answer to a request given up on earlier
                # the kernel may flag a change during the last batch on NLMSG_DONE alone
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    self._raise_if_error(raw)
                    if interrupted:
                        raise NetlinkDumpInterrupted()
                    return out
                out.append(raw)
                if not multi and not flags & NLM_F_MULTI:
                    return out

    def _raise_if_error(self, raw: bytes) -> None:
        """An NLMSG_ERROR or NLMSG_DONE whose code is not 0 is the kernel's refusal: raise it."""
        if len(raw) >= NLMSG_HEADER.size + 4:
            code = ERROR_CODE.unpack_from(raw, NLMSG_HEADER.size)[0]
            if code:
                raise kernel_error(raw, abs(code))

    def _recv(self) -> bytes:
        """One datagram; one too large for the buffer is read whole with a buffer its size."""
        size = self.sock.recv_into(self.buffer, RECV_BUFFER, socket.MSG_PEEK | socket.MSG_TRUNC)
        if size > MAX_MESSAGE:
            self.sock.recv(1)  # drop it
            raise NetlinkError(0, f"netlink answer of {size} bytes exceeds {MAX_MESSAGE}")
        if size > RECV_BUFFER:
            return self.sock.recv(size)
        n = self.sock.recv_into(self.buffer, RECV_BUFFER)
        return bytes(self.buffer[:n])


def attributes(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink attribute in data[start:end]."""
    offset = start
    while offset + NLA.size <= end:
        length, kind = NLA.unpack_from(data, offset)
        if length < NLA.size:
            return
        yield kind & NLA_TYPE_MASK, data[offset + NLA.size : offset + length]
        offset += (length + 3) & ~3


NLM_F_CAPPED = 0x100  # linux/netlink.h: the error echoes only the request's header
NLM_F_ACK_TLVS = 0x200  # extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1  # the kernel's message, NUL-terminated


def kernel_error(raw: bytes, code: int) -> OSError:
    """The refusal in an NLMSG_ERROR (or NLMSG_DONE) as pyroute2 would raise it: `NetlinkError`
    with the errno and the extended-ack message (None without one); ENOBUFS an `OSError`.

    Read straight from the kernel's layout (nlmsghdr, error, the request echoed, then the ack's
    attributes): pyroute2 decodes the echoed request too, which made a lookup of a missing link
    cost three times one that finds it. `tests/net/test_sync_netlink.py` holds both equal.
    """
    _, kind, flags, _, _ = NLMSG_HEADER.unpack_from(raw, 0)
    message = None
    if flags & NLM_F_ACK_TLVS:
        offset = NLMSG_HEADER.size + ERROR_CODE.size
        if kind == NLMSG_ERROR:  # the request's header, and its body unless capped
            echoed = NLMSG_HEADER.size if flags & NLM_F_CAPPED else NLMSG_HEADER.unpack_from(raw, offset)[0]
            offset += (echoed + 3) & ~3
        for attr, value in attributes(raw, offset, len(raw)):
            if attr == NLMSGERR_ATTR_MSG:
                message = value.split(b"\0", 1)[0].decode("ascii", "replace")
    if code == errno_codes.ENOBUFS:
        return OSError(code, message)
    error: OSError = NetlinkError(code, message)
    return error


class Rtnl:
    """A namespace's rtnetlink for one request: the synchronous socket, pyroute2's on demand.

    `home` is an fd of the namespace the socket was made in (owned by this object): the lazily
    opened `IPRoute` is made there too (by `open_ipr`), whatever namespace the thread is in at
    that moment. There is deliberately no attribute forwarding: a call that is not a typed
    helper's must say `pyroute2()`.
    """

    def __init__(self, nl: NetlinkSocket, home: int, open_ipr: Callable[[int], IPRoute]):
        self.nl = nl
        self._home = home
        self._open_ipr = open_ipr
        self._ipr: IPRoute | None = None

    @property
    def netns_fd(self) -> int:
        """An fd of this socket's namespace, valid while the socket is open (to place links there)."""
        return self._home

    def pyroute2(self) -> IPRoute:
        """pyroute2's full IPRoute in the same namespace, for the requests the typed helpers
        do not build themselves; for modules of `pycni.net` only (its calls are untyped)."""
        if self._ipr is None:
            self._ipr = self._open_ipr(self._home)
        return self._ipr

    def close(self) -> None:
        try:
            if self._ipr is not None:
                self._ipr.close()
        finally:
            self.nl.close()
            os.close(self._home)


def dump(fetch: Callable[[], Iterable[Any]]) -> list[Any]:
    """The messages of a dump, retried when the kernel reports a change interrupted it.

    An interrupted dump may miss or repeat entries; the last attempt's interruption is raised.
    """
    for _ in range(DUMP_RETRIES - 1):
        try:
            return list(fetch())
        except NetlinkDumpInterrupted:
            continue
    return list(fetch())


class Refusal:
    """What `tolerating` caught: the kernel's error, when its errno was one the caller expects."""

    def __init__(self) -> None:
        self.error: NetlinkError | None = None

    @property
    def errno(self) -> int | None:
        """The errno of the tolerated refusal; None when the kernel did what was asked."""
        return None if self.error is None else int(self.error.code)

    def __bool__(self) -> bool:
        return self.error is not None


@contextmanager
def tolerating(*codes: int, failure: str | None = None, any_errno: bool = False) -> Iterator[Refusal]:
    """Run a request, judging a kernel refusal by its errno; the one `except NetlinkError`.

    A refusal with one of `codes` (any, with `any_errno`) is expected ("missing is done",
    "exists is fine"): the block ends and the yielded `Refusal` holds it. Any other refusal is
    raised: as it is, or, with `failure`, as an `InternalError` saying "`failure`: <the kernel's
    words>" whose cause is it.
    """
    refusal = Refusal()
    try:
        yield refusal
    except NetlinkError as err:
        if any_errno or err.code in codes:
            refusal.error = err
            return
        if failure is None:
            raise
        raise InternalError(f"{failure}: {describe(err)}", f"errno {err.code}") from err


def describe(err: NetlinkError) -> str:
    """The kernel's words for a refusal: its extended-ack message, else the errno's text."""
    code = err.code if isinstance(err.code, int) else 0
    text = os.strerror(code) if code in errno_codes.errorcode else str(code)
    message = err.args[1] if len(err.args) > 1 and err.args[1] else ""
    return str(message or text)
