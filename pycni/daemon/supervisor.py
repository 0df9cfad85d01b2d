"""The supervisor: accepts callers, checks who they are, queues them for idle workers.

It never runs plugin code itself. It is single-threaded, driven by one selector, so forking
a replacement worker is safe at any time. What it guarantees:
- a bounded queue: beyond it a caller is refused at once and runs the request itself;
- a hard deadline per request: a worker that overstays (past its own SIGALRM) is killed and
  replaced, its caller sees the connection close;
- a bounded drain on SIGTERM: the socket goes first (new callers fall back), queued callers
  are refused, in-flight requests get `drain_timeout` to finish.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import TryAgainLater
from pycni.daemon import wire, worker
from pycni.daemon.listener import Listener, peer_uid
from pycni.daemon.protocol import KIND_STATUS, MAGIC
from pycni.daemon.stats import Stats

if TYPE_CHECKING:
    from pycni.k8s.endpoint import Endpoint

log = logging.getLogger("pycni.daemon")

#: Added to the worker's own limits before the supervisor kills it.
KILL_GRACE = 3.0
#: How long a connected caller may take to send its request (it sends at once).
CALLER_IO_TIMEOUT = 2.0


@dataclass(frozen=True)
class SupervisorOptions:
    """How the supervisor serves: its socket, worker count, queue bound and time limits."""

    socket_path: Path
    workers: int = 8
    queue: int = 128
    request_timeout: float = 60.0
    drain_timeout: float = 30.0
    #: HOST:PORT of /metrics, /healthz and /readyz; empty serves none.
    metrics_address: str = ""

    @property
    def hard_deadline(self) -> float:
        """Seconds a worker may hold one caller: reading, READY/GO, the request, the answer."""
        return 2 * worker.Limits(self.request_timeout).io_timeout + self.request_timeout + KILL_GRACE


@dataclass
class Worker:
    pid: int
    control: socket.socket
    busy_since: float | None = None
    #: Our copy of the caller's connection while busy, to tell the caller if the worker dies.
    conn: socket.socket | None = None
    #: Why the supervisor killed it, if it did (the caller then gets an error object).
    killed_for: str | None = None

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.busy_since = None


class Supervisor:
    def __init__(self, options: SupervisorOptions, listener: Listener) -> None:
        self.options = options
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self.queue: deque[socket.socket] = deque()
        self.workers: dict[int, Worker] = {}
        self.stats = Stats()
        self.stop_requested = False
        self.drain_deadline: float | None = None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.exited: dict[int, int] = {}
        #: Accepted callers whose request has not arrived yet, with their accept time.
        self.unread: dict[socket.socket, float] = {}
        #: /metrics, /healthz, /readyz, answered by this loop (so /healthz fails if the loop hangs).
        self.endpoint = self._bind_endpoint(options.metrics_address)

    def _bind_endpoint(self, address: str) -> Endpoint | None:
        if not address:
            return None
        from pycni.daemon import metrics
        from pycni.k8s.endpoint import Endpoint

        return Endpoint(address, metrics.registry(self.stats, self.live), lambda: True, self.ready)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT and the drain that follows; the process's exit code."""
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.sel.register(self.listener.sock, selectors.EVENT_READ, "accept")
        if self.endpoint is not None:
            self.sel.register(self.endpoint, selectors.EVENT_READ, "endpoint")
        for _ in range(self.options.workers):
            self._spawn()
        log.warning("pycni daemon serving %s with %d workers", self.listener.path, self.options.workers)
        while not self._finished():
            for key, _ in self.sel.select(self._timeout()):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._drain_wakeups()
                elif key.data == "endpoint":
                    self._serve_endpoint()
                elif isinstance(key.data, socket.socket):
                    self._classify(key.data)
                else:
                    self._on_control(key.data)
            self._reap()
            self._enforce_deadlines()
            if self.stop_requested and self.drain_deadline is None:
                self._begin_stop()
            self._dispatch()
        self._stop_workers()
        log.warning("pycni daemon stopped")
        return 0

    def live(self) -> tuple[int, int, int]:
        """(workers, busy, queued) now."""
        return len(self.workers), self._busy(), len(self.queue)

    def ready(self) -> bool:
        """Readiness: taking callers (not draining) with at least one worker."""
        return self.drain_deadline is None and bool(self.workers)

    def _serve_endpoint(self) -> None:
        assert self.endpoint is not None
        try:
            self.endpoint.handle_one()
        except OSError as err:  # a prober that went away must not stop the daemon
            log.warning("metrics endpoint: %s", err)

    def status(self) -> dict[str, Any]:
        workers, busy, queued = self.live()
        answer = self.stats.to_json(workers=workers, busy=busy, queued=queued)
        if self.endpoint is not None:
            answer["metrics_port"] = self.endpoint.port
        return answer

    # callers

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: callers fall back meanwhile
                log.error("accept failed: %s", err)
                return
            if peer_uid(conn) != 0:
                self._refuse(conn, "not root", "only root may use the pycni daemon")
            else:
                self._classify(conn)

    def _classify(self, conn: socket.socket) -> None:
        """Answer a status request here (no worker needed); queue a CNI request.

        Looks at the request's kind without consuming it; a caller that has not sent it yet
        (all of it, for a status request) is watched until it does, or until
        `CALLER_IO_TIMEOUT`: this loop never waits for a caller. Bytes that are not the
        protocol's are refused at once.
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
            self._refuse(conn, "bad request", "bad request: not a pycni request")
        elif head[len(MAGIC) : len(MAGIC) + 1] == KIND_STATUS:
            with contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.recv(64 * 1024)  # consume the request: closing over unread data resets the caller
                wire.send_done(conn, 0, json.dumps(self.status()).encode())  # fits the socket buffer
            conn.close()
        elif len(self.queue) >= self.options.queue and self._busy() == len(self.workers):
            self._refuse(conn, "overloaded", "the pycni daemon's queue is full")
        else:
            self.queue.append(conn)
            self._dispatch()
            if self.queue and self.queue[-1] is conn:
                wire.send_queued(conn)

    def _refuse(self, conn: socket.socket, reason: str, message: str) -> None:
        self.stats.refuse(reason)
        wire.send_refused(conn, message, socket.MSG_DONTWAIT)
        conn.close()

    def _dispatch(self) -> None:
        for w in self.workers.values():
            if not self.queue:
                return
            if w.busy_since is not None:
                continue
            conn = self.queue.popleft()
            try:
                socket.send_fds(w.control, [worker.JOB], [conn.fileno()])
            except OSError:
                self.queue.appendleft(conn)  # the worker is gone; its EOF is handled next
                continue
            w.conn = conn
            w.busy_since = time.monotonic()

    # workers

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                ours.close()
                self._close_in_child()
                worker.serve(theirs, worker.Limits(self.options.request_timeout))
            finally:
                os._exit(70)
        theirs.close()
        w = Worker(pid, ours)
        self.workers[pid] = w
        self.sel.register(ours, selectors.EVENT_READ, w)

    def _close_in_child(self) -> None:
        """A worker keeps nothing of the supervisor's: no listener, no callers, no signals."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.setpgid(0, 0)  # a terminal's ^C goes to the supervisor, which drains
        self.sel.close()
        self.listener.sock.close()
        if self.endpoint is not None:
            self.endpoint.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for conn in self.queue:
            conn.close()
        for other in self.workers.values():
            other.control.close()

    def _on_control(self, w: Worker) -> None:
        try:
            msg = w.control.recv(64 * 1024)
        except OSError:
            msg = b""
        if not msg:
            self._lost(w)
        elif msg.startswith(worker.DONE_PREFIX):
            w.release()
            self._account(json.loads(msg[len(worker.DONE_PREFIX) :]))

    def _account(self, report: dict[str, Any]) -> None:
        if "type" in report:
            self.stats.record(report["type"], report["command"], report["code"], report["ms"])
        elif "refused" in report:
            self.stats.refuse(report["refused"])
        elif report.get("abandoned"):
            self.stats.abandoned += 1

    def _lost(self, w: Worker) -> None:
        self.sel.unregister(w.control)
        w.control.close()
        del self.workers[w.pid]
        self._answer_orphan(w, self._wait(w.pid))
        self.stats.worker_restarts += 1
        if self.drain_deadline is None:
            self._spawn()

    def _answer_orphan(self, w: Worker, returncode: int) -> None:
        """Tell the caller of a worker that died mid-request what happened to it."""
        if w.conn is None:
            return
        log.error("worker %d ended (%d) with a request in flight", w.pid, returncode)
        if w.killed_for is not None:
            error = {
                "code": TryAgainLater.code,
                "msg": f"the pycni daemon stopped the request: {w.killed_for}",
            }
            with contextlib.suppress(OSError):
                w.conn.setblocking(False)
                wire.send_done(w.conn, 1, json.dumps(error).encode() + b"\n")
        else:
            wire.send_died(w.conn, returncode)
        self.stats.errors += 1
        w.release()

    def _wait(self, pid: int) -> int:
        """The exit code of a worker whose control socket closed (it is exiting)."""
        code = self._ended(pid, block=True)
        assert code is not None
        return code

    def _ended(self, pid: int, block: bool = False) -> int | None:
        """The worker's exit code once it has ended (reaping it if `_reap` has not), else None.

        `exited` holds exit codes already converted from wait statuses: never convert twice.
        """
        if pid in self.exited:
            return self.exited.pop(pid)
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return 0
        return os.waitstatus_to_exitcode(status) if done == pid else None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = os.waitstatus_to_exitcode(status)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for conn, since in list(self.unread.items()):
            if now - since > CALLER_IO_TIMEOUT:
                self.sel.unregister(conn)
                del self.unread[conn]
                conn.close()
        for w in self.workers.values():
            if w.busy_since is not None and now - w.busy_since > self.options.hard_deadline:
                log.error("worker %d exceeded its %.0fs deadline", w.pid, self.options.hard_deadline)
                w.killed_for = f"it ran past the {self.options.hard_deadline:.0f}s deadline"
                _kill(w.pid)

    # stopping

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _begin_stop(self) -> None:
        """Stop taking callers at once; queued ones run the request themselves."""
        self.drain_deadline = time.monotonic() + self.options.drain_timeout
        self.sel.unregister(self.listener.sock)
        self.listener.close()
        while self.queue:
            self._refuse(self.queue.popleft(), "shutting down", "the pycni daemon is shutting down")
        log.warning("pycni daemon draining %d in-flight requests", self._busy())

    def _finished(self) -> bool:
        if self.drain_deadline is None:
            return False
        if self._busy() == 0:
            return True
        if time.monotonic() >= self.drain_deadline:
            log.error("drain timeout: killing %d workers with requests in flight", self._busy())
            return True
        return False

    def _stop_workers(self) -> None:
        """Kill what is still running after the drain, answer its callers, reap everyone.

        A worker `_reap` has already reaped ended on its own: its caller learns how, and its pid,
        which may be another process's by now, is never signalled.
        """
        for w in self.workers.values():
            if w.busy_since is not None and w.pid not in self.exited:
                w.killed_for = "the daemon was shutting down"
                _kill(w.pid)
            w.control.close()  # an idle worker exits on EOF
        deadline = time.monotonic() + 5
        pending = dict(self.workers)
        while pending:
            for pid in list(pending):
                code = self._ended(pid)
                if code is not None:
                    self._answer_orphan(pending.pop(pid), code)
            if pending and time.monotonic() > deadline:
                for pid in pending:
                    _kill(pid)
                deadline = time.monotonic() + 5
            elif pending:
                self.sel.select(0.05)  # woken by SIGCHLD through the wakeup pipe
                self._drain_wakeups()

    def _busy(self) -> int:
        return sum(w.busy_since is not None for w in self.workers.values())

    def _timeout(self) -> float:
        return 0.25 if self.drain_deadline is not None or self._busy() or self.unread else 5.0


def _needed(head: bytes) -> int:
    """How much of a request the supervisor looks at: its kind; all of a status request's frame."""
    return wire.PREFIX if head[len(MAGIC) : len(MAGIC) + 1] == KIND_STATUS else len(MAGIC) + 1


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
