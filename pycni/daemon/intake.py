"""The supervisor's caller intake: accepting connections, telling requests apart, the queue.

A caller is accepted, its peer uid checked (root only), and its request's kind looked at
without consuming it: a status request is answered here, a CNI request queued for the worker
pool, anything else refused. The loop never waits for a caller: one that has not sent its kind
yet is watched on the selector until it does, or until `CALLER_IO_TIMEOUT`. Beyond the queue's
bound (with every worker busy) a caller is refused at once and runs the request itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pycni.daemon import wire
from pycni.daemon.listener import Listener, peer_uid
from pycni.daemon.pool import Queued, WorkerPool
from pycni.daemon.protocol import KIND_STATUS, MAGIC
from pycni.daemon.stats import Stats

log = logging.getLogger("pycni.daemon")

#: How long a connected caller may take to send its request (it sends at once).
CALLER_IO_TIMEOUT = 2.0


class Intake:
    """Callers from `listener`, watched on the supervisor's selector with themselves as the data."""

    def __init__(
        self,
        sel: selectors.BaseSelector,
        listener: Listener,
        stats: Stats,
        pool: WorkerPool,
        bound: int,
        status: Callable[[], dict[str, Any]],
    ) -> None:
        self.sel = sel
        self.listener = listener
        self.stats = stats
        self.pool = pool
        self.bound = bound
        self.status = status
        #: Callers waiting for a worker, oldest first, with the time each was queued.
        self.queue: deque[Queued] = deque()
        #: Accepted callers whose request has not arrived yet, with their accept time.
        self.unread: dict[socket.socket, float] = {}

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: callers fall back meanwhile
                log.error("accept failed: %s", err)
                return
            if peer_uid(conn) != 0:
                self.refuse(conn, "not root", "only root may use the pycni daemon")
            else:
                self.classify(conn)

    def classify(self, conn: socket.socket) -> None:
        """Answer a status request here (no worker needed); queue a CNI request.

        Looks at the request's kind without consuming it; a caller that has not sent it yet
        (all of it, for a status request) is watched until it does: this loop never waits for
        a caller. Bytes that are not the protocol's are refused at once.
        """
        try:
            head = conn.recv(wire.PREFIX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            head = None
        except OSError:
            head = b""
        if head is not None and 0 < len(head) < _needed(head) and MAGIC.startswith(head[: len(MAGIC)]):
            head = None  # partly sent: wait for the rest (never block this loop on a caller)
        if head is None:
            if conn not in self.unread:
                self.unread[conn] = time.monotonic()
                self.sel.register(conn, selectors.EVENT_READ, conn)
            return
        if self.unread.pop(conn, None) is not None:
            self.sel.unregister(conn)
        if not head:
            conn.close()  # the caller left before sending anything
        elif not head.startswith(MAGIC):
            self.refuse(conn, "bad request", "bad request: not a pycni request")
        elif head[len(MAGIC) : len(MAGIC) + 1] == KIND_STATUS:
            self._answer_status(conn)
        elif len(self.queue) >= self.bound and self.pool.all_busy():
            self.refuse(conn, "overloaded", "the pycni daemon's queue is full")
        else:
            self.queue.append((conn, time.monotonic()))
            self.pool.dispatch(self.queue)
            if self.queue and self.queue[-1][0] is conn:
                wire.send_queued(conn)

    def _answer_status(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.recv(64 * 1024)  # consume the request: closing over unread data resets the caller
            wire.send_done(conn, 0, json.dumps(self.status()).encode())  # fits the socket buffer
        conn.close()

    def refuse(self, conn: socket.socket, reason: str, message: str) -> None:
        self.stats.refuse(reason)
        wire.send_refused(conn, message, socket.MSG_DONTWAIT)
        conn.close()

    def enforce_deadline(self) -> None:
        """Drop callers that have not sent their request within `CALLER_IO_TIMEOUT`."""
        now = time.monotonic()
        for conn, since in list(self.unread.items()):
            if now - since > CALLER_IO_TIMEOUT:
                self.sel.unregister(conn)
                del self.unread[conn]
                conn.close()

    def stop(self) -> None:
        """Stop taking callers: the socket goes (new callers fall back), queued ones are refused."""
        self.sel.unregister(self.listener.sock)
        self.listener.close()
        while self.queue:
            self.refuse(self.queue.popleft()[0], "shutting down", "the pycni daemon is shutting down")

    def close_in_child(self) -> None:
        """A new worker keeps no caller of the supervisor's and not the listening socket."""
        self.listener.sock.close()
        for conn in (*(queued for queued, _ in self.queue), *self.unread):
            conn.close()


def _needed(head: bytes) -> int:
    """How much of a request the supervisor looks at: its kind; all of a status request's frame."""
    return wire.PREFIX if head[len(MAGIC) : len(MAGIC) + 1] == KIND_STATUS else len(MAGIC) + 1
