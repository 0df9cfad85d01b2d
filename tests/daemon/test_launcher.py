"""The launcher: forward to the daemon, fall back when it does not take the request, never twice."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pycni.daemon.protocol import GO, KIND_CNI, MAGIC, MAX_STDIN, QUEUED, READY
from tests.daemon.conftest import runner
from tests.daemon.probe_plugin import read_record
from tests.daemon.process import DaemonProcess
from tests.helpers.poll import wait_until as wait_for

NETNS = "/run/netns/none"


def probe_conf(record: Path, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "probe-net", "type": "probe", "record": str(record), **extra}


def where(record: Path) -> list[str]:
    return [line[2] for line in read_record(record)]


def test_forwarded_request_runs_in_the_daemon(daemon_bin: Path, daemon: DaemonProcess, record: Path) -> None:
    out = runner(daemon_bin, **daemon.env)("probe", "ADD", probe_conf(record), netns=NETNS).ok()
    assert out["interfaces"] == [{"name": "eth0", "sandbox": NETNS}]
    assert where(record) == ["daemon"]


REQUESTS: list[tuple[str, str, Any]] = [
    ("probe", "ADD", None),
    ("probe", "CHECK", None),
    ("probe", "DEL", None),
    ("probe", "ADD", {"cniVersion": "0.2.0", "name": "n", "type": "probe"}),
    ("probe", "ADD", {"cniVersion": "1.0.0", "name": "n", "raise_error": True}),
    ("bridge", "VERSION", {"cniVersion": "0.4.0"}),
    ("bridge", "ADD", b"{oops"),
    ("bridge", "ADD", {"cniVersion": "1.0.0", "type": "bridge"}),
    ("host-local", "ADD", {"cniVersion": "0.0.9", "name": "n", "type": "host-local"}),
    ("multus", "ADD", {"cniVersion": "1.0.0", "name": "n", "type": "multus"}),
]


@pytest.mark.parametrize(("plugin_type", "command", "conf"), REQUESTS)
def test_daemon_and_in_process_answers_are_identical(
    daemon_bin: Path, daemon: DaemonProcess, record: Path, plugin_type: str, command: str, conf: Any
) -> None:
    conf = probe_conf(record) if conf is None else conf
    via_daemon = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)(
        plugin_type, command, conf, netns=NETNS
    )
    direct = runner(daemon_bin, PYCNI_DAEMON="off")(plugin_type, command, conf, netns=NETNS)
    assert (via_daemon.code, via_daemon.stdout) == (direct.code, direct.stdout)
    if conf is not None and isinstance(conf, dict) and "record" in conf:
        assert where(record) == ["daemon", "direct"]


def test_missing_socket_runs_in_process(daemon_bin: Path, sock_dir: Path, record: Path) -> None:
    out = runner(daemon_bin, PYCNI_DAEMON_SOCKET=str(sock_dir / "absent.sock"))
    assert out("probe", "ADD", probe_conf(record), netns=NETNS).ok()["ips"]
    assert where(record) == ["direct"]


def test_stale_socket_runs_in_process_without_waiting(daemon_bin: Path, sock_dir: Path, record: Path) -> None:
    path = sock_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # the file stays, nobody listens: connect() is refused
    env = {"PYCNI_DAEMON_SOCKET": str(path), "PYCNI_DAEMON_ACCEPT_TIMEOUT": "60"}
    started = time.monotonic()
    runner(daemon_bin, **env)("probe", "ADD", probe_conf(record), netns=NETNS).ok()
    assert time.monotonic() - started < 30, "the launcher waited on a socket nobody listens on"
    assert where(record) == ["direct"]


def test_hung_daemon_falls_back_after_the_accept_timeout(
    daemon_bin: Path, sock_dir: Path, record: Path
) -> None:
    path = sock_dir / "hung.sock"
    with socket.socket(socket.AF_UNIX) as hung:
        hung.bind(str(path))
        hung.listen(8)  # connect() succeeds into the backlog, nothing ever answers
        env = {"PYCNI_DAEMON_SOCKET": str(path), "PYCNI_DAEMON_ACCEPT_TIMEOUT": "0.3"}
        out = runner(daemon_bin, **env)("probe", "ADD", probe_conf(record), netns=NETNS)
        hung.settimeout(0)
        conn, _ = hung.accept()  # the launcher did reach the socket before giving up
        conn.close()
    assert out.ok()["ips"]
    assert where(record) == ["direct"]


def test_off_never_touches_the_socket(daemon_bin: Path, sock_dir: Path, record: Path) -> None:
    path = sock_dir / "quiet.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(8)
        env = {"PYCNI_DAEMON_SOCKET": str(path), "PYCNI_DAEMON": "off"}
        runner(daemon_bin, **env)("probe", "ADD", probe_conf(record), netns=NETNS).ok()
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert where(record) == ["direct"]


def test_a_request_given_up_on_is_never_run_by_the_daemon(
    daemon_bin: Path, daemon: DaemonProcess, record: Path
) -> None:
    """The caller falls back while the daemon is stopped; once resumed, the daemon must not run it too."""
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        env = {**daemon.env, "PYCNI_DAEMON_ACCEPT_TIMEOUT": "0.3"}
        runner(daemon_bin, **env)("probe", "ADD", probe_conf(record), netns=NETNS).ok()
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: daemon.status()["abandoned"] == 1, what="the daemon to drop the abandoned request")
    assert where(record) == ["direct"]


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_a_worker_dying_mid_request_ends_its_caller_the_same_way(
    daemon_bin: Path, daemon: DaemonProcess, record: Path, command: str
) -> None:
    out = runner(daemon_bin, **daemon.env)(
        "probe", command, probe_conf(record, crash_in_daemon=True), netns=NETNS
    )
    assert (out.code, out.stdout) == (3, "")  # the probe's worker exits with 3, as the plugin would have
    assert where(record) == ["daemon"]
    wait_for(lambda: daemon.status()["worker_restarts"] >= 1, what="a replacement worker")
    runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)(
        "probe", "CHECK", probe_conf(record), netns=NETNS
    ).ok()


@contextmanager
def vanishing_daemon(path: Path) -> Iterator[None]:
    """A daemon that takes one request (READY, then GO) and disappears without answering."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(30)
            conn.recvmsg(1 << 20, socket.CMSG_SPACE(8))
            conn.sendall(READY + (1000).to_bytes(4, "big"))
            assert conn.recv(1) == GO

    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(serve)
        try:
            yield
        finally:
            listener.close()
        served.result(timeout=30)


def test_add_lost_after_go_is_not_replayed(daemon_bin: Path, sock_dir: Path, record: Path) -> None:
    path = sock_dir / "gone.sock"
    with vanishing_daemon(path):
        out = runner(daemon_bin, PYCNI_DAEMON_SOCKET=str(path))(
            "probe", "ADD", probe_conf(record), netns=NETNS
        )
    assert out.code == 1 and out.json["code"] == 11
    assert where(record) == []


def test_del_lost_after_go_is_replayed_in_process(daemon_bin: Path, sock_dir: Path, record: Path) -> None:
    path = sock_dir / "gone.sock"
    with vanishing_daemon(path):
        out = runner(daemon_bin, PYCNI_DAEMON_SOCKET=str(path))(
            "probe", "DEL", probe_conf(record), netns=NETNS
        )
    assert (out.code, out.stdout) == (0, "")
    assert where(record) == ["direct"]


def test_a_config_over_the_daemons_limit_runs_in_process(
    daemon_bin: Path, daemon: DaemonProcess, record: Path
) -> None:
    """Stdin past MAX_STDIN is never sent; the caller runs it with the whole of it replayed."""
    conf = probe_conf(record, pad="x" * MAX_STDIN)
    out = runner(daemon_bin, **daemon.env)("probe", "ADD", conf, netns=NETNS)
    assert out.ok()["ips"]
    assert where(record) == ["direct"]


def test_required_mode_reports_a_missing_daemon(daemon_bin: Path, sock_dir: Path, record: Path) -> None:
    env = {"PYCNI_DAEMON_SOCKET": str(sock_dir / "absent.sock"), "PYCNI_DAEMON": "required"}
    out = runner(daemon_bin, **env)("probe", "ADD", probe_conf(record), netns=NETNS)
    assert out.code == 1 and out.json["code"] == 11
    assert where(record) == []


def queued_then_gone(daemon: DaemonProcess, record: Path) -> None:
    """A caller whose request the supervisor queued (it sent QUEUED) and which then died before
    reading that answer, as a SIGKILLed launcher does: the kernel resets the connection."""
    from pycni.daemon import launcher

    caller = socket.socket(socket.AF_UNIX)
    caller.connect(str(daemon.socket))
    header = b"\0".join(
        [b"probe", b"CNI_COMMAND=ADD", b"CNI_CONTAINERID=gone", b"CNI_NETNS=" + NETNS.encode(),
         b"CNI_IFNAME=eth0", b"CNI_PATH=/nonexistent"]
    )  # fmt: skip
    stdin = json.dumps(probe_conf(record)).encode()
    frame = MAGIC + KIND_CNI + len(header).to_bytes(4, "big") + len(stdin).to_bytes(4, "big") + header + stdin
    fds = launcher._own_namespaces()
    try:
        caller.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, launcher._fds_bytes(fds))])
    finally:
        for fd in fds:
            os.close(fd)
    wait_for(lambda: caller.recv(1, socket.MSG_PEEK) == QUEUED, what="the supervisor to queue the caller")
    caller.close()  # with QUEUED unread: a reset, not an orderly end


def test_a_queued_caller_killed_before_its_turn_is_abandoned_not_refused(
    daemon_bin: Path, start: Callable[..., DaemonProcess], record: Path, tmp_path: Path
) -> None:
    """A launcher killed while queued never ran its request and refused nothing: the worker that
    finds its connection reset drops it as abandoned, like one that gave up."""
    daemon = start("--workers", "1")
    release = tmp_path / "release"
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(call, "probe", "ADD", probe_conf(record, hold_until=str(release)), netns=NETNS)
        wait_for(lambda: read_record(record), what="the only worker to be busy")
        queued_then_gone(daemon, record)
        release.touch()
        holder.result().ok()

    def dropped() -> dict[str, Any] | None:
        status = daemon.status()
        return status if status["abandoned"] or status["refused"] else None

    status = wait_for(dropped, what="the worker to take the reset caller")
    assert status is not None  # wait_for returns only what the predicate found (for mypy)
    assert (status["abandoned"], status["refused"]) == (1, {})
    assert [line[1] for line in read_record(record)] == ["ctr-0"], "the reset caller's request never ran"
