"""The worker pool's shutdown and the try-again answers of the daemon's clients, in-process.

A worker reaped by the supervisor's loop (its exit code recorded) whose control socket had not
yet been seen closed is still in the pool when the drain ends. Its caller must learn how it ended, and
the supervisor must not convert the recorded exit code a second time (70 became -70, a death by
SIGHUP raised ValueError and aborted the shutdown), nor signal a pid it has already reaped.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import time

import pytest

from pycni.daemon.pool import Worker, WorkerPool
from pycni.daemon.protocol import DIED
from pycni.daemon.stats import Stats
from pycni.daemon.worker import Limits
from tests.helpers.poll import wait_until


def _ended_child(how: str) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        if how == "signal":
            signal.signal(signal.SIGHUP, signal.SIG_DFL)  # a run under nohup inherits it ignored
            os.kill(os.getpid(), signal.SIGHUP)
        os._exit(70)
    return pid


@pytest.mark.parametrize(("how", "returncode"), [("exit", 70), ("signal", -signal.SIGHUP)])
def test_a_worker_reaped_before_the_drain_ended_is_reported_as_it_ended(
    how: str, returncode: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = WorkerPool(selectors.DefaultSelector(), Stats(), Limits(60.0), on_fork=lambda: None)
    killed: list[int] = []
    monkeypatch.setattr("pycni.daemon.pool.kill", killed.append)
    control, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn, caller = socket.socketpair()
    pid = _ended_child(how)
    pool.workers[pid] = Worker(pid, control, busy_since=time.monotonic(), conn=conn)

    def reaped() -> bool:
        pool.reap()
        return pid in pool.exited

    wait_until(reaped, what="the worker reaped")
    try:
        pool.stop(pause=lambda: None)
        caller.settimeout(5)
        assert caller.recv(64) == DIED + returncode.to_bytes(4, "big", signed=True)
        assert killed == []  # a reaped pid may be another process's by now
        assert pool.stats.errors == 1
    finally:
        for sock in (control, worker_end, conn, caller):
            sock.close()


def test_every_try_again_answer_the_clients_print_has_try_again_later_s_code() -> None:
    """`protocol` imports nothing, so it spells code 11 out; these must not drift from the spec code."""
    import json

    from pycni.cni.errors import TryAgainLater
    from pycni.daemon import native
    from pycni.daemon.protocol import LOST_ADD, REQUIRED_UNAVAILABLE

    answers = (REQUIRED_UNAVAILABLE, LOST_ADD, native.fallback_error(None))
    assert {json.loads(raw)["code"] for raw in answers} == {TryAgainLater.code}
