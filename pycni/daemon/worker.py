"""A worker process: takes one caller at a time from the supervisor and answers it.

Workers are forked from the supervisor after everything is imported, so a request costs a
function call, not an interpreter. Each is single-threaded (it can enter the caller's mount
namespace, and no lock can be held by a thread that fork left behind) and serves one request
at a time; parallelism comes from several workers, as the reference gets it from one process
per call. A request that hangs meets SIGALRM at the per-request timeout and becomes a
"try again later" error for its caller; one that ignores even that is killed by the
supervisor, which starts a fresh worker.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

from pycni import registry
from pycni.cni import callerview, timing
from pycni.daemon import wire
from pycni.daemon.namespaces import Home, are_namespaces, caller_namespaces, go_home
from pycni.daemon.protocol import GO, KIND_CNI
from pycni.net import links, netns

#: Supervisor → worker: a caller's connection is attached. Worker → supervisor: DONE_PREFIX + report.
JOB = b"job"
DONE_PREFIX = b"done "


@dataclass(frozen=True)
class Limits:
    #: Per-request limit on the plugin's own work; sent to the caller with READY.
    request_timeout: float
    #: How long a caller may take to send its request, and to say GO after READY.
    io_timeout: float = 2.0


class RequestTimeout(TimeoutError):
    pass


def serve(control: socket.socket, limits: Limits) -> NoReturn:
    """The worker's loop; ends when the supervisor closes the control socket."""
    home = Home.current()
    arm_deadlines()
    gc.disable()  # the collector runs between requests (`collect_garbage`), never inside one
    served = 0
    while True:
        msg, fds, _, _ = socket.recv_fds(control, 64, 1)
        if not msg or not fds:
            os._exit(0)
        conn = socket.socket(fileno=fds[0])
        report: dict[str, object] = {}
        try:
            report = handle(conn, home, limits)
        except Exception as exc:
            report = {"refused": f"caller error: {type(exc).__name__}"}
        finally:
            conn.close()
            go_home(home)
        served += 1
        collect_garbage(served)  # before DONE: the supervisor gives queued callers to idle workers
        control.send(DONE_PREFIX + json.dumps(report).encode())


#: Every this many requests a worker runs a full collection; otherwise the young generations,
#: when the allocations since the last one pass the collector's own thresholds.
FULL_COLLECTION_EVERY = 256


def collect_garbage(served: int) -> None:
    """The collections the automatic collector would have run inside the request, run after it.

    Measured in-process: 100 bridge lifecycles triggered 37 young and 3 middle collections, the
    middle ones up to 7 ms on a busy machine: a pause inside whichever request tripped the
    threshold, one of the daemon's p99 outliers. The caller has its answer by now.
    """
    if served % FULL_COLLECTION_EVERY == 0:
        gc.collect()
        return
    young, middle, _ = gc.get_count()
    young_limit, middle_limit, _ = gc.get_threshold()
    if middle >= middle_limit:
        gc.collect(1)
    elif young >= young_limit:
        gc.collect(0)


#: How a caller that died shows on its connection: killed with an answer of ours unread (a
#: queued caller's QUEUED), the kernel resets it. Its request never ran: it is abandoned.
CALLER_GONE = (ConnectionResetError, BrokenPipeError)


def handle(conn: socket.socket, home: Home, limits: Limits) -> dict[str, object]:
    """Answer one caller; what happened, for the supervisor's counters."""
    taken = time.perf_counter()
    conn.settimeout(limits.io_timeout)
    try:
        req = wire.read_request(conn)
    except CALLER_GONE:
        return {"abandoned": True}
    except (wire.BadRequest, OSError) as err:
        wire.send_refused(conn, f"bad request: {err}")
        return {"refused": "bad request"}
    try:
        try:
            refusal = _refusal(conn, req)
            if refusal is not None:
                return refusal
            wire.send_ready(conn, limits.request_timeout)
            go = conn.recv(1)
        except OSError:
            go = b""
        if go != GO:
            return {"abandoned": True}
        handoff = time.perf_counter() - taken
        return {**_run(conn, req, home, limits), "handoff_ms": handoff * 1000}
    finally:
        req.close()


def _refusal(conn: socket.socket, req: wire.Request) -> dict[str, object] | None:
    """Why this request is refused (the caller is told and runs it itself), or None to take it."""
    if req.kind != KIND_CNI or registry.lookup(req.plugin_type) is None:
        reason, told = "unknown type", f"unknown plugin type {req.plugin_type!r}"
    elif not are_namespaces(req.ns_fds):
        reason, told = "no namespaces", "the caller's namespaces were not attached"
    elif req.pod_netns_fd is not None and not req.env.get("CNI_NETNS"):
        reason, told = "bad request", "bad request: a netns fd without CNI_NETNS"
    elif wire.pending(conn):
        reason, told = "bad request", "bad request: more data than the request's lengths say"
    else:
        return None
    wire.send_refused(conn, told)
    return {"refused": reason}


def _run(conn: socket.socket, req: wire.Request, home: Home, limits: Limits) -> dict[str, object]:
    """The request, after GO, in the caller's namespaces and view; its answer relayed.

    The report says where its time went (docs/daemon.md): entering the caller's namespaces,
    the kernel, IPAM, other delegates, and the plugin's own work (the rest).
    """
    started = time.perf_counter()
    outcome = run_as_caller(req, home, limits.request_timeout)
    ms = (time.perf_counter() - started) * 1000
    if outcome.left:
        _answer_but_unlink(conn, req, outcome.code, outcome.out.encode(), outcome.left[0])
    else:
        with contextlib.suppress(OSError):  # a caller that went away still had its request run
            wire.send_done(conn, outcome.code, outcome.out.encode())
    phases = {name: seconds * 1000 for name, seconds in timing.spent().items()}
    phases["plugin"] = outcome.ran_s * 1000 - sum(phases.values())
    phases["namespaces"] = ms - outcome.ran_s * 1000
    report = {"type": req.plugin_type, "command": req.command, "code": outcome.code, "ms": ms}
    if outcome.left:
        report["left_to_caller"] = outcome.left[0]
    return {**report, "phases": phases}


@dataclass(frozen=True)
class Outcome:
    """What one request did: its exit code and output, and how long the plugin itself ran."""

    code: int
    out: str
    #: The pod links left for the caller to delete (`callerview.leave_link_to_caller`).
    left: list[str]
    ran_s: float


def run_as_caller(req: wire.Request, home: Home, timeout: float) -> Outcome:
    """Run `req` in its caller's namespaces and view, at most `timeout` seconds; back home after.

    The worker's one way to run a request; the supervisor's warm-up (`warmup`) runs its own
    requests through it too, so what it warms is what a worker runs.
    """
    out = io.StringIO()
    pod_netns = req.env.get("CNI_NETNS", "")
    timing.reset()
    with (
        caller_namespaces(home, req.ns_fds) as hop,
        callerview.installed(pod_netns, req.pod_netns_fd, hop, _caller_may_unlink(req)) as view,
    ):
        entered = time.perf_counter()
        code = _run_with_deadline(req, out, timeout)
        ran = time.perf_counter() - entered
    return Outcome(code, out.getvalue(), view.left, ran)


def _answer_but_unlink(conn: socket.socket, req: wire.Request, code: int, out: bytes, ifname: str) -> None:
    """Leave the pod's link to the caller; one that is gone already cannot: it is deleted here."""
    try:
        wire.send_done_but_unlink(conn, code, out, ifname)
    except OSError:
        assert req.pod_netns_fd is not None
        with contextlib.suppress(Exception), netns.rtnl(req.pod_netns_fd) as pod:
            links.delete_link(pod, ifname)


def _caller_may_unlink(req: wire.Request) -> bool:
    """A DEL of a type whose last kernel wait is the pod's link, from a caller that can take it."""
    ref = registry.lookup(req.plugin_type)
    return req.caller_unlinks and req.command == "DEL" and ref is not None and ref.caller_may_delete_pod_link


def _run_with_deadline(req: wire.Request, out: io.StringIO, timeout: float) -> int:
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _ARMED[0] = True
    try:
        return registry.run(req.plugin_type, req.env, io.BytesIO(req.stdin), out)
    finally:
        _ARMED[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)


_ARMED = [False]


def arm_deadlines() -> None:
    """Let `run_as_caller` end a request at its timeout (SIGALRM raises `RequestTimeout`)."""
    signal.signal(signal.SIGALRM, _on_alarm)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _ARMED[0]:
        _ARMED[0] = False
        raise RequestTimeout("the request exceeded the daemon's per-request timeout")
