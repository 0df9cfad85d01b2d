"""The supervisor: one selector loop that joins the caller intake to the worker pool.

It never runs plugin code itself. It is single-threaded, driven by one selector, so forking
a replacement worker is safe at any time. Callers come in through `intake` (credentials, the
kind of request, the bounded queue), requests run in `pool`'s workers. What it guarantees:
- a bounded queue: beyond it a caller is refused at once and runs the request itself;
- a hard deadline per request: a worker that overstays (past its own SIGALRM) is killed and
  replaced, its caller sees the connection close;
- a bounded drain on SIGTERM: the socket goes first (new callers fall back), queued callers
  are refused, in-flight requests get `drain_timeout` to finish.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pycni.cni.wakeup import WakePipe
from pycni.daemon import worker
from pycni.daemon.intake import Intake
from pycni.daemon.listener import Listener
from pycni.daemon.pool import WorkerPool
from pycni.daemon.stats import Stats

if TYPE_CHECKING:
    from pycni.k8s.endpoint import Endpoint

log = logging.getLogger("pycni.daemon")

#: Added to the worker's own limits before the supervisor kills it.
KILL_GRACE = 3.0


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


class Supervisor:
    def __init__(self, options: SupervisorOptions, listener: Listener) -> None:
        self.options = options
        self.listener = listener
        self.sel = selectors.DefaultSelector()
        self.stats = Stats()
        self.stop_requested = False
        self.drain_deadline: float | None = None
        self.wakeup = WakePipe()
        self.pool = WorkerPool(
            self.sel, self.stats, worker.Limits(options.request_timeout), self._close_in_child
        )
        self.intake = Intake(self.sel, listener, self.stats, self.pool, options.queue, self.status)
        #: /metrics, /healthz, /readyz, answered by this loop (so /healthz fails if the loop hangs).
        self.endpoint = self._bind_endpoint(options.metrics_address)

    def _bind_endpoint(self, address: str) -> Endpoint | None:
        if not address:
            return None
        from pycni.daemon import metrics
        from pycni.k8s.endpoint import Endpoint

        registry = metrics.registry(self.stats, self.live, lambda: list(self.pool.workers))
        return Endpoint(address, registry, lambda: True, self.ready)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT and the drain that follows; the process's exit code."""
        signal.set_wakeup_fd(self.wakeup.write_fd)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        self.sel.register(self.wakeup, selectors.EVENT_READ, "wake")
        self.sel.register(self.listener.sock, selectors.EVENT_READ, "accept")
        if self.endpoint is not None:
            self.sel.register(self.endpoint, selectors.EVENT_READ, "endpoint")
        for _ in range(self.options.workers):
            self.pool.spawn()
        log.warning("pycni daemon serving %s with %d workers", self.listener.path, self.options.workers)
        while not self._finished():
            for key, _ in self.sel.select(self._timeout()):
                self._handle(key.data)
            self.pool.reap()
            self.intake.enforce_deadline()
            self.pool.enforce_deadline(self.options.hard_deadline)
            if self.stop_requested and self.drain_deadline is None:
                self._begin_stop()
            self.pool.dispatch(self.intake.queue)
        self.pool.stop(self._pause)
        log.warning("pycni daemon stopped")
        return 0

    def _handle(self, data: Any) -> None:
        """One ready selector entry: the listener, the wake pipe, the endpoint, a caller, a worker."""
        if data == "accept":
            self.intake.accept()
        elif data == "wake":
            self.wakeup.drain()
        elif data == "endpoint":
            self._serve_endpoint()
        elif isinstance(data, socket.socket):
            self.intake.classify(data)
        else:
            self.pool.on_control(data)

    def live(self) -> tuple[int, int, int]:
        """(workers, busy, queued) now."""
        return len(self.pool.workers), self.pool.busy(), len(self.intake.queue)

    def ready(self) -> bool:
        """Readiness: taking callers (not draining) with at least one worker."""
        return self.drain_deadline is None and bool(self.pool.workers)

    def _serve_endpoint(self) -> None:
        assert self.endpoint is not None
        try:
            self.endpoint.handle_one()
        except OSError as err:  # a prober that went away must not stop the daemon
            log.warning("metrics endpoint: %s", err)

    def status(self) -> dict[str, Any]:
        from pycni.daemon import memory

        workers, busy, queued = self.live()
        answer = self.stats.to_json(
            workers=workers,
            busy=busy,
            queued=queued,
            memory=memory.report(os.getpid(), self.pool.workers),
        )
        if self.endpoint is not None:
            answer["metrics_port"] = self.endpoint.port
        return answer

    def _close_in_child(self) -> None:
        """A worker keeps nothing of the supervisor's: no listener, no callers, no signals."""
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.setpgid(0, 0)  # a terminal's ^C goes to the supervisor, which drains
        self.sel.close()
        self.intake.close_in_child()
        if self.endpoint is not None:
            self.endpoint.close()
        self.wakeup.close()

    # stopping

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = True

    def _pause(self) -> None:
        """A short wait for children to end, woken early by SIGCHLD through the wakeup pipe."""
        self.sel.select(0.05)
        self.wakeup.drain()

    def _begin_stop(self) -> None:
        """Stop taking callers at once; queued ones run the request themselves."""
        self.drain_deadline = time.monotonic() + self.options.drain_timeout
        self.pool.replace_lost = False
        self.intake.stop()
        log.warning("pycni daemon draining %d in-flight requests", self.pool.busy())

    def _finished(self) -> bool:
        if self.drain_deadline is None:
            return False
        if self.pool.busy() == 0:
            return True
        if time.monotonic() >= self.drain_deadline:
            log.error("drain timeout: killing %d workers with requests in flight", self.pool.busy())
            return True
        return False

    def _timeout(self) -> float:
        busy = self.pool.busy() or self.intake.unread
        return 0.25 if self.drain_deadline is not None or busy else 5.0
