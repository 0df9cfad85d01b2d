"""The supervisor's worker pool: pre-forked workers, handing them callers, and their ends.

Each worker is a process forked from the supervisor with a SEQPACKET control socket: the
supervisor sends a caller's connection over it (SCM_RIGHTS), the worker answers with one DONE
report per request. The pool keeps the supervisor's copy of each busy worker's connection, so
when a worker dies mid-request (or is killed past its hard deadline, or at shutdown) its caller
is told what happened. Exit codes are converted from wait statuses exactly once, in `_ended`.

It never accepts callers (`intake`), and runs no plugin code itself.
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycni.cni.errors import TryAgainLater
from pycni.daemon import wire, worker
from pycni.daemon.stats import Served, Stats

log = logging.getLogger("pycni.daemon")

#: How long a stopping pool waits for its workers before killing them again.
STOP_WAIT = 5.0


#: A caller waiting for a worker, and when it was queued (`time.monotonic`).
Queued = tuple[socket.socket, float]


@dataclass
class Worker:
    pid: int
    control: socket.socket
    busy_since: float | None = None
    #: How long the caller it serves waited in the queue, in seconds.
    queue_wait: float = 0.0
    #: Our copy of the caller's connection while busy, to tell the caller if the worker dies.
    conn: socket.socket | None = None
    #: Why the supervisor killed it, if it did (the caller then gets an error object).
    killed_for: str | None = None

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.busy_since = None
        self.queue_wait = 0.0


class WorkerPool:
    """The workers of one supervisor, registered on its selector with themselves as the data.

    `on_fork` runs in each new worker before it serves: it closes what the worker must not keep
    of the supervisor's (the listener, callers, signal handlers); the pool closes the other
    workers' control sockets itself.
    """

    def __init__(
        self,
        sel: selectors.BaseSelector,
        stats: Stats,
        limits: worker.Limits,
        on_fork: Callable[[], None],
    ) -> None:
        self.sel = sel
        self.stats = stats
        self.limits = limits
        self.on_fork = on_fork
        self.workers: dict[int, Worker] = {}
        #: Exit codes of workers reaped by `reap` whose control socket has not been seen closed.
        self.exited: dict[int, int] = {}
        #: False once stopping: a lost worker is no longer replaced.
        self.replace_lost = True

    def spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                ours.close()
                self.on_fork()
                for other in self.workers.values():
                    other.control.close()
                worker.serve(theirs, self.limits)
            finally:
                os._exit(70)
        theirs.close()
        w = Worker(pid, ours)
        self.workers[pid] = w
        self.sel.register(ours, selectors.EVENT_READ, w)

    # handing out callers

    def busy(self) -> int:
        return sum(w.busy_since is not None for w in self.workers.values())

    def all_busy(self) -> bool:
        return self.busy() == len(self.workers)

    def dispatch(self, queue: deque[Queued]) -> None:
        """Hand queued callers to idle workers, oldest first."""
        for w in self.workers.values():
            if not queue:
                return
            if w.busy_since is not None:
                continue
            conn, queued_at = queue.popleft()
            try:
                socket.send_fds(w.control, [worker.JOB], [conn.fileno()])
            except OSError:
                queue.appendleft((conn, queued_at))  # the worker is gone; its EOF is handled next
                continue
            w.conn = conn
            w.busy_since = time.monotonic()
            w.queue_wait = w.busy_since - queued_at

    # what workers say

    def on_control(self, w: Worker) -> None:
        """A worker's control socket is readable: a DONE report, or EOF because it is exiting."""
        try:
            msg = w.control.recv(64 * 1024)
        except OSError:
            msg = b""
        if not msg:
            self._lost(w)
        elif msg.startswith(worker.DONE_PREFIX):
            queue_wait = w.queue_wait
            w.release()
            self._account(json.loads(msg[len(worker.DONE_PREFIX) :]), queue_wait)

    def _account(self, report: dict[str, Any], queue_wait: float) -> None:
        if "type" in report:
            self.stats.record(Served.of(report, queue_wait * 1000))
        elif "refused" in report:
            self.stats.refuse(report["refused"])
        elif report.get("abandoned"):
            self.stats.abandoned += 1

    def _lost(self, w: Worker) -> None:
        self.sel.unregister(w.control)
        w.control.close()
        del self.workers[w.pid]
        code = self._ended(w.pid, block=True)
        self._answer_orphan(w, 0 if code is None else code)
        self.stats.worker_restarts += 1
        if self.replace_lost:
            self.spawn()

    def _answer_orphan(self, w: Worker, returncode: int) -> None:
        """Tell the caller of a worker that died mid-request what happened to it."""
        if w.conn is None:
            return
        log.error("worker %d ended (%d) with a request in flight", w.pid, returncode)
        if w.killed_for is not None:
            msg = f"the pycni daemon stopped the request: {w.killed_for}"
            with contextlib.suppress(OSError):
                w.conn.setblocking(False)
                wire.send_done(
                    w.conn, 1, json.dumps({"code": TryAgainLater.code, "msg": msg}).encode() + b"\n"
                )
        else:
            wire.send_died(w.conn, returncode)
        self.stats.errors += 1
        w.release()

    # their ends

    def reap(self) -> None:
        """Collect every ended child's exit code without blocking (SIGCHLD woke the loop)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = os.waitstatus_to_exitcode(status)

    def _ended(self, pid: int, block: bool = False) -> int | None:
        """The worker's exit code once it has ended (reaping it if `reap` has not), else None.

        `exited` holds exit codes already converted from wait statuses: never convert twice.
        """
        if pid in self.exited:
            return self.exited.pop(pid)
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return 0
        return os.waitstatus_to_exitcode(status) if done == pid else None

    def enforce_deadline(self, hard_deadline: float) -> None:
        """Kill a worker that has held one caller longer than `hard_deadline` seconds."""
        now = time.monotonic()
        for w in self.workers.values():
            if w.busy_since is not None and now - w.busy_since > hard_deadline:
                log.error("worker %d exceeded its %.0fs deadline", w.pid, hard_deadline)
                w.killed_for = f"it ran past the {hard_deadline:.0f}s deadline"
                kill(w.pid)

    def stop(self, pause: Callable[[], None]) -> None:
        """Kill what is still running, answer its callers, reap everyone; `pause` waits a moment
        (the supervisor's selector, woken by SIGCHLD) between looks.

        A worker `reap` has already reaped ended on its own: its caller learns how, and its pid,
        which may be another process's by now, is never signalled.
        """
        self.replace_lost = False
        for w in self.workers.values():
            if w.busy_since is not None and w.pid not in self.exited:
                w.killed_for = "the daemon was shutting down"
                kill(w.pid)
            w.control.close()  # an idle worker exits on EOF
        deadline = time.monotonic() + STOP_WAIT
        pending = dict(self.workers)
        while pending:
            for pid in list(pending):
                code = self._ended(pid)
                if code is not None:
                    self._answer_orphan(pending.pop(pid), code)
            if pending and time.monotonic() > deadline:
                for pid in pending:
                    kill(pid)
                deadline = time.monotonic() + STOP_WAIT
            elif pending:
                pause()


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
