"""The daemon itself: who may talk to it, how it starts and stops, how it survives bad requests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pycni.daemon.protocol import KIND_CNI, MAGIC, REFUSED
from tests.daemon.conftest import runner
from tests.daemon.probe_plugin import read_record
from tests.daemon.process import REPO, DaemonProcess
from tests.daemon.test_launcher import NETNS, probe_conf, where
from tests.helpers.netns import Netns
from tests.helpers.poll import wait_until as wait_for

NOBODY = 65534


def test_socket_is_root_only(daemon: DaemonProcess) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert stat.S_IMODE(os.stat(daemon.socket.parent).st_mode) == 0o700
    assert os.stat(daemon.socket.parent).st_uid == 0


def _connect_as_nobody(path: Path, request: bytes = b"") -> str:
    """Connect (and send `request`) from a child that dropped to uid nobody; what happened."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one word through the pipe, never return into pytest
        outcome = "error"
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(path))
                with contextlib.suppress(OSError):  # the daemon may have hung up on us already
                    if request:
                        s.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _own_namespace_fds())])
                # a refused peer is answered at once, before anything it sends is read
                outcome = "refused" if s.recv(1) == REFUSED else "served"
        except PermissionError:
            outcome = "eacces"
        except BaseException as exc:
            outcome = f"error {exc!r}"
        finally:
            os.write(w, outcome.encode())
            os._exit(0)
    os.close(w)
    try:
        return os.read(r, 64).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)


def _own_namespace_fds() -> bytes:
    fds = [os.open(f"/proc/thread-self/ns/{name}", os.O_RDONLY) for name in ("net", "mnt")]
    return b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)


def test_a_non_root_peer_s_request_is_never_run(daemon: DaemonProcess, record: Path) -> None:
    """A whole, valid request from uid nobody (the modes opened up for it) is refused, not run."""
    os.chmod(daemon.socket.parent, 0o711)
    os.chmod(daemon.socket, 0o666)
    stdin = json.dumps(probe_conf(record)).encode()
    env = [b"CNI_COMMAND=ADD", b"CNI_CONTAINERID=ctr-0", b"CNI_NETNS=" + NETNS.encode(), b"CNI_IFNAME=eth0"]
    header = b"\0".join([b"probe", *env, b"CNI_PATH=/nonexistent"])
    frame = MAGIC + KIND_CNI + len(header).to_bytes(4, "big") + len(stdin).to_bytes(4, "big") + header + stdin
    assert _connect_as_nobody(daemon.socket, frame) == "refused"
    status = daemon.status()
    assert status["refused"] == {"not root": 1}
    assert (status["requests"], status["abandoned"], status["busy"], status["queued"]) == (0, 0, 0, 0)
    assert read_record(record) == []


def test_non_root_peer_is_refused(daemon: DaemonProcess) -> None:
    assert _connect_as_nobody(daemon.socket) == "eacces"
    # with the file modes opened up, the peer credential check still turns it away
    os.chmod(daemon.socket.parent, 0o711)
    os.chmod(daemon.socket, 0o666)
    assert _connect_as_nobody(daemon.socket) == "refused"
    assert daemon.status()["refused"] == {"not root": 1}


def test_stale_socket_is_replaced_on_start(
    start: Callable[..., DaemonProcess], sock_dir: Path, daemon_bin: Path, record: Path
) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_dir / "d.sock"))
    daemon = start()
    runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)(
        "probe", "ADD", probe_conf(record), netns=NETNS
    ).ok()
    assert where(record) == ["daemon"]


def test_a_second_daemon_leaves_a_live_socket_alone(daemon: DaemonProcess) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.daemon.serve_probe", "--socket", str(daemon.socket)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and "another daemon" in proc.stderr
    assert daemon.status()["pid"] == daemon.proc.pid


def test_sigterm_finishes_in_flight_requests_then_exits(
    daemon: DaemonProcess, daemon_bin: Path, record: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    held = probe_conf(record, hold_until=str(release))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(runner(daemon_bin, **daemon.env), "probe", "ADD", held, netns=NETNS)
        wait_for(lambda: read_record(record), what="the held request to start")
        daemon.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: not daemon.socket.exists(), what="the daemon to stop listening")
        assert daemon.proc.poll() is None, "the daemon exited with a request in flight"
        # while it drains, new callers run requests themselves (another attachment: one of the
        # held ADD's own would wait for it)
        runner(daemon_bin, **daemon.env)(
            "probe", "DEL", probe_conf(record), netns=NETNS, container_id="other"
        ).ok()
        release.touch()
        assert pending.result().ok()["ips"]
        assert daemon.proc.wait(60) == 0
    assert where(record) == ["daemon", "direct"]


def test_a_hung_request_times_out_without_wedging_the_daemon(
    start: Callable[..., DaemonProcess], daemon_bin: Path, record: Path
) -> None:
    daemon = start("--workers", "1", "--request-timeout", "1")
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    out = call("probe", "ADD", probe_conf(record, delay=600), netns=NETNS, container_id="hung")
    assert out.code == 1 and out.json["code"] == 11 and "timed out" in out.json["msg"]
    call("probe", "ADD", probe_conf(record), netns=NETNS, container_id="next").ok()
    assert [line[1:3] for line in read_record(record)] == [["hung", "daemon"], ["next", "daemon"]]


def test_a_crashing_request_is_an_error_for_its_caller_only(daemon: DaemonProcess, daemon_bin: Path) -> None:
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "probe"}
    with ThreadPoolExecutor(6) as pool:
        good = [pool.submit(call, "probe", "ADD", conf, netns=NETNS, container_id=f"g{i}") for i in range(5)]
        bad = pool.submit(call, "probe", "ADD", {**conf, "raise_error": True}, netns=NETNS)
        assert bad.result().json["code"] == 999
        assert all(f.result().ok()["interfaces"] for f in good)
    # a worker reports to the supervisor after answering its caller: wait for all six reports
    counters = wait_for(lambda: (s := daemon.status())["requests"] >= 6 and s, what="six reports")
    assert counters["errors"] == 1


def test_a_full_queue_sends_callers_back_to_run_it_themselves(
    start: Callable[..., DaemonProcess], daemon_bin: Path, record: Path, tmp_path: Path
) -> None:
    daemon = start("--workers", "1", "--queue", "0")
    call = runner(daemon_bin, **daemon.env)
    release = tmp_path / "release"
    held = probe_conf(record, hold_until=str(release))
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(call, "probe", "ADD", held, netns=NETNS, container_id="busy")
        wait_for(lambda: read_record(record), what="the worker to be busy")
        call("probe", "ADD", probe_conf(record), netns=NETNS, container_id="extra").ok()
        release.touch()
        busy.result().ok()
    assert sorted(line[1:3] for line in read_record(record)) == [["busy", "daemon"], ["extra", "direct"]]
    assert daemon.status()["refused"] == {"overloaded": 1}


def test_status_reports_counters_per_type_and_command(daemon: DaemonProcess, daemon_bin: Path) -> None:
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    call("bridge", "VERSION", {"cniVersion": "1.0.0"}).ok()
    call("bridge", "ADD", b"{oops", netns=NETNS)
    proc = subprocess.run(
        [sys.executable, "-m", "pycni", "daemon", "--status", "--socket", str(daemon.socket)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["requests"] == 2 and stats["errors"] == 1
    assert stats["latency"]["bridge ADD"]["errors"] == 1
    assert stats["latency"]["bridge VERSION"]["requests"] == 1
    assert stats["latency"]["bridge VERSION"]["p99_ms"] >= 0


def test_status_without_a_daemon_fails(sock_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pycni", "daemon", "--status", "--socket", str(sock_dir / "none.sock")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0 and "no pycni daemon" in proc.stderr


def test_32_concurrent_requests_get_their_own_answers(
    daemon: DaemonProcess, daemon_bin: Path, record: Path
) -> None:
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)

    def lifecycle(i: int) -> tuple[Any, int]:
        added = call(
            "probe",
            "ADD",
            probe_conf(record),
            netns=f"/run/netns/p{i}",
            container_id=f"c{i}",
            ifname=f"if{i}",
        ).ok()
        deleted = call(
            "probe",
            "DEL",
            probe_conf(record),
            netns=f"/run/netns/p{i}",
            container_id=f"c{i}",
            ifname=f"if{i}",
        )
        return added, deleted.code

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lifecycle, range(32)))
    for i, (added, code) in enumerate(results):
        assert added["interfaces"] == [{"name": f"if{i}", "sandbox": f"/run/netns/p{i}"}]
        assert code == 0
    lines = read_record(record)
    assert len(lines) == 64 and {line[2] for line in lines} == {"daemon"}
    assert sorted(line[1] for line in lines if line[0] == "ADD") == sorted(f"c{i}" for i in range(32))


def test_requests_run_in_the_callers_netns_and_workers_come_home(
    start: Callable[..., DaemonProcess], daemon_bin: Path, record: Path, make_netns: Callable[..., Netns]
) -> None:
    daemon = start("--workers", "1")
    pod = make_netns("pcd")
    call = runner(daemon_bin, PYCNI_DAEMON="required", **daemon.env)
    call("probe", "ADD", probe_conf(record), netns=NETNS, netns_exec=pod.name, container_id="inside").ok()
    call("probe", "ADD", probe_conf(record), netns=NETNS, container_id="outside").ok()
    (inside, outside) = read_record(record)
    assert inside[1:3] == ["inside", "daemon"] and outside[1:3] == ["outside", "daemon"]
    assert int(inside[4]) == os.stat(pod.path).st_ino
    assert int(outside[4]) == os.stat("/proc/self/ns/net").st_ino
    assert inside[3] == outside[3]  # the same worker served both


def test_a_queued_caller_waits_for_a_worker_instead_of_falling_back(
    start: Callable[..., DaemonProcess], daemon_bin: Path, record: Path, tmp_path: Path
) -> None:
    daemon = start("--workers", "1")
    release = tmp_path / "release"
    call = runner(daemon_bin, PYCNI_DAEMON_ACCEPT_TIMEOUT="0.2", **daemon.env)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(
            call,
            "probe",
            "ADD",
            probe_conf(record, hold_until=str(release)),
            netns=NETNS,
            container_id="first",
        )
        wait_for(lambda: read_record(record), what="the worker to be busy")
        second = pool.submit(call, "probe", "ADD", probe_conf(record), netns=NETNS, container_id="second")
        wait_for(lambda: daemon.status()["queued"] == 1, what="the second caller to be queued")
        release.touch()
        first.result().ok()
        second.result().ok()
    assert [line[1:3] for line in read_record(record)] == [["first", "daemon"], ["second", "daemon"]]
