"""The native forwarder's C: warning-free, the Python launcher's twin on the wire, and memory-safe
against a daemon that answers garbage (run under valgrind and under ASan + UBSan)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from pycni.daemon.native import Compiler, compile_forwarder
from pycni.daemon.protocol import (
    CALLER_UNLINKS,
    DONE,
    GO,
    KIND_CNI,
    LOST_ADD,
    MAGIC,
    MAX_OUTPUT,
    READY,
    REFUSED,
)
from pycni.install import fallback_path
from tests.daemon.conftest import runner
from tests.daemon.probe_plugin import read_record
from tests.daemon.process import DaemonProcess, install_probe, native_compiler

MARKER = "# pycni-launcher type=probe (test)"
NETNS = "/run/netns/none"
#: The sanitizer runs need a dynamic build: valgrind cannot see malloc in a static binary.
TOOLS = {
    "valgrind": ((), ["valgrind", "-q", "--error-exitcode=99", "--leak-check=no"]),
    "asan": (("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"), []),
}


def probe_conf(record: Path) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": "probe-net", "type": "probe", "record": str(record)}


@pytest.mark.parametrize("static", [True, False])
def test_the_forwarder_builds_without_a_warning(tmp_path: Path, static: bool) -> None:
    compiler = Compiler(native_compiler().path, static)
    if static and not native_compiler().static:
        pytest.skip("this C library cannot link statically")
    binary = compile_forwarder(compiler, "probe", tmp_path / "fallback", MARKER, ("-Werror",))
    assert binary.startswith(b"\x7fELF") and MARKER.encode() in binary


@pytest.fixture(params=sorted(TOOLS))
def checked_bin(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """The probe's forwarder built for a memory checker, and the command prefix that runs it."""
    flags, prefix = TOOLS[request.param]
    if prefix and shutil.which(prefix[0]) is None:
        pytest.skip(f"{prefix[0]} is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install_probe(bin_dir, native=True)  # the fallback script, and a forwarder replaced below
    compiler = Compiler(native_compiler().path, static=False)
    try:
        binary = compile_forwarder(compiler, "probe", fallback_path(bin_dir, "probe"), MARKER, flags)
    except Exception as err:
        pytest.skip(f"cannot build with {flags}: {err}")
    (bin_dir / "probe").write_bytes(binary)
    return bin_dir, prefix


def run_checked(
    checked: tuple[Path, list[str]], env: dict[str, str], stdin: bytes
) -> subprocess.CompletedProcess[bytes]:
    bin_dir, prefix = checked
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ASAN_OPTIONS": "detect_leaks=0", **env}
    return subprocess.run(
        [*prefix, str(bin_dir / "probe")],
        input=stdin,
        env=full_env,
        capture_output=True,
        timeout=120,
        check=False,
    )


def cni_env(command: str, **extra: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "ctr-1",
        "CNI_NETNS": NETNS,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/opt/cni/bin",
        **extra,
    }


@contextmanager
def fake_daemon(path: Path, answer: Callable[[socket.socket], None]) -> Iterator[list[bytes]]:
    """A daemon that reads one request, then lets `answer` reply; yields the frames it received."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    frames: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(60)
            data, ancdata, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(8))
            for _, _, fds in ancdata:
                for i in range(0, len(fds) - len(fds) % 4, 4):
                    os.close(int.from_bytes(fds[i : i + 4], "little"))
            frames.append(data)
            answer(conn)

    with ThreadPoolExecutor(1) as pool:
        served = pool.submit(serve)
        try:
            yield frames
        finally:
            listener.close()
            path.unlink(missing_ok=True)
        served.result(timeout=60)


def ready_then(reply: bytes) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(READY + (5000).to_bytes(4, "big"))
        assert conn.recv(1) == GO
        conn.sendall(reply)

    return answer


def test_a_real_daemon_run_is_clean(
    checked_bin: tuple[Path, list[str]], daemon: DaemonProcess, tmp_path: Path
) -> None:
    record = tmp_path / "record"
    conf = json.dumps(probe_conf(record)).encode()
    out = run_checked(checked_bin, cni_env("ADD", PYCNI_DAEMON="required", **daemon.env), conf)
    assert out.returncode == 0, out.stderr.decode()
    assert json.loads(out.stdout)["interfaces"] == [{"name": "eth0", "sandbox": NETNS}]
    assert [line[2] for line in read_record(record)] == ["daemon"]


def test_the_fallback_gets_stdin_replayed(checked_bin: tuple[Path, list[str]], tmp_path: Path) -> None:
    """A refusal after stdin was read: the Python fallback must still see the whole config."""
    record = tmp_path / "record"
    conf = json.dumps({**probe_conf(record), "pad": "x" * 200_000}).encode()
    with fake_daemon(
        tmp_path / "x.sock", lambda conn: conn.sendall(REFUSED + (2).to_bytes(4, "big") + b"no")
    ):
        out = run_checked(checked_bin, cni_env("ADD", PYCNI_DAEMON_SOCKET=str(tmp_path / "x.sock")), conf)
    assert out.returncode == 0, out.stderr.decode()
    assert [line[2] for line in read_record(record)] == ["direct"]


@pytest.mark.parametrize(
    "reply",
    [
        DONE + (0).to_bytes(4, "big") + (MAX_OUTPUT + 1).to_bytes(4, "big"),  # an answer past the limit
        DONE + (0).to_bytes(4, "big") + (0xFFFFFFFF).to_bytes(4, "big") + b"short",  # a lie, then EOF
        DONE + b"\x00\x00",  # cut in the middle of a field
        b"?",  # not an answer at all
    ],
)
def test_a_garbage_answer_after_go_is_a_lost_add_not_a_crash(
    checked_bin: tuple[Path, list[str]], tmp_path: Path, reply: bytes
) -> None:
    record = tmp_path / "record"
    path = tmp_path / "g.sock"
    with fake_daemon(path, ready_then(reply)):
        out = run_checked(
            checked_bin,
            cni_env("ADD", PYCNI_DAEMON_SOCKET=str(path)),
            json.dumps(probe_conf(record)).encode(),
        )
    assert (out.returncode, out.stdout) == (1, LOST_ADD), out.stderr.decode()
    assert read_record(record) == []


def test_native_and_python_send_the_same_frame(tmp_path: Path) -> None:
    """The two launchers are one protocol: byte for byte the same request for the same call."""
    frames: dict[bool, bytes] = {}
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "probe"}).encode()
    for native in (False, True):
        bin_dir = tmp_path / f"bin-{native}"
        bin_dir.mkdir()
        install_probe(bin_dir, native=native)
        path = tmp_path / "f.sock"
        env = {**cni_env("DEL"), "PYCNI_DAEMON": "required", "OTHER": "x"}
        env["PYCNI_DAEMON_SOCKET"] = str(tmp_path / "f.sock")
        with fake_daemon(path, lambda conn: conn.sendall(REFUSED + (0).to_bytes(4, "big"))) as got:
            runner(bin_dir)("probe", "DEL", conf, env=env, netns=NETNS)
        frames[native] = got[0]
    assert frames[True].startswith(MAGIC + KIND_CNI)
    # the same, but for the flag of what only the native forwarder can do (after the type)
    flag = b"\0" + CALLER_UNLINKS
    python_header_len = int.from_bytes(frames[False][5:9], "big")
    expected = bytearray(frames[False])
    expected[5:9] = (python_header_len + len(flag)).to_bytes(4, "big")
    expected[13 + len("probe") : 13 + len("probe")] = flag
    assert frames[True] == bytes(expected)
    assert b"OTHER" not in frames[True]


def test_a_missing_fallback_is_a_spec_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / 'we"ird'  # the path is quoted in the error, as JSON
    bin_dir.mkdir()
    install_probe(bin_dir, native=True)
    fallback_path(bin_dir, "probe").unlink()
    out = runner(bin_dir, PYCNI_DAEMON="off")("probe", "ADD", {"cniVersion": "1.0.0"}, netns=NETNS)
    assert out.code == 1
    assert out.json == {
        "code": 999,
        "msg": f"pycni: cannot run the in-process fallback {fallback_path(bin_dir, 'probe')}",
    }


def daemon_only_probe(bin_dir: Path) -> Path:
    """A daemon-only forwarder for the probe type: no Python fallback beside it."""
    target = bin_dir / "probe"
    target.write_bytes(compile_forwarder(native_compiler(), "probe", None, MARKER))
    target.chmod(0o755)
    return target


def test_a_daemon_only_forwarder_says_try_again_later_without_a_daemon(tmp_path: Path) -> None:
    daemon_only_probe(tmp_path)
    out = runner(tmp_path)("probe", "ADD", {"cniVersion": "1.0.0", "name": "n"}, netns=NETNS)
    assert out.code == 1
    assert out.json["code"] == 11 and "daemon" in out.json["msg"]
    assert not (tmp_path / ".pycni").exists()


def test_a_daemon_only_forwarder_is_served_by_the_daemon(daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon_only_probe(tmp_path)
    record = tmp_path / "record"
    out = runner(tmp_path, **daemon.env)("probe", "ADD", probe_conf(record), netns=NETNS).ok()
    assert out["interfaces"] == [{"name": "eth0", "sandbox": NETNS}]
    assert [line[2] for line in read_record(record)] == ["daemon"]


def test_install_daemon_only_writes_no_fallbacks(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pycni", "install", "--bin-dir", str(tmp_path), "--daemon-only"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "installed daemon-only" in proc.stdout
    assert not (tmp_path / ".pycni").exists()
    assert (tmp_path / "bridge").read_bytes().startswith(b"\x7fELF")
