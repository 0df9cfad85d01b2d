"""What an installed executable runs: hand the request to the node daemon, or run it here.

This module is the client end of the daemon's wire protocol (`pycni.daemon` imports its
constants from here) and it runs on every CNI call, so it imports only what a `-I -S`
interpreter already holds or builtins (`posix`, `sys`, `_socket`): even `import os` costs
~1.5 ms there, and `json`/`re` several more. Nothing heavy loads unless we fall back.

The daemon is an accelerator, never a single point of failure. The launcher falls back to
running the plugin in-process whenever the daemon did not *take* the request: no socket,
nothing listening, a refusal, or no answer within the accept timeout. A request the daemon
took is never run twice: the daemon's worker announces READY and then waits for our GO,
and only GO lets it run; we send GO only while we have not given up, and after GO we never
run an ADD ourselves (a lost ADD is reported as "try again later", after which the runtime
calls DEL). Commands the spec makes idempotent (DEL, CHECK, STATUS, GC, VERSION) are replayed
in-process if the daemon dies after GO. docs/daemon.md has the full argument.

Wire format (integers are 4-byte big-endian):
  request   MAGIC kind(1) len(header) len(stdin) header stdin, with SCM_RIGHTS carrying our
            network and mount namespace fds; kind C = CNI request, S = status;
            header = plugin type NUL KEY=VALUE NUL ... (the forwarded environment)
  answers   Q              queued: every worker is busy (the daemon is alive, worth waiting for)
            R timeout_ms   taken by a worker, waiting for GO
            X len reason   refused: the caller runs the request itself
            D code len out done: exit code and stdout, relayed unchanged
            K status       the worker died mid-request (status < 0: by that signal): we end the same way
  client    G              go ahead (only after R)
"""

import posix
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET
from _socket import socket as _socket

MAGIC = b"PCNI"
KIND_CNI = b"C"
KIND_STATUS = b"S"
READY = b"R"
QUEUED = b"Q"
REFUSED = b"X"
DONE = b"D"
DIED = b"K"
GO = b"G"

SOCKET_ENV = "PYCNI_DAEMON_SOCKET"
MODE_ENV = "PYCNI_DAEMON"  # "auto" (default), "off" (never use it), "required" (never fall back)
ACCEPT_TIMEOUT_ENV = "PYCNI_DAEMON_ACCEPT_TIMEOUT"
DEFAULT_SOCKET = "/run/pycni/daemon.sock"

#: Connecting to a Unix socket is immediate unless its backlog is full; then do not wait.
CONNECT_TIMEOUT = 0.1
#: How long the daemon may take to answer at all (READY, QUEUED or a refusal) before we run
#: the request ourselves: a daemon that is alive answers in microseconds.
ACCEPT_TIMEOUT = 2.0
#: How long a request the daemon has queued (all workers busy) may wait for a worker.
QUEUE_TIMEOUT = 30.0
#: Added to the daemon's own per-request timeout (sent with READY) before we stop waiting.
ANSWER_GRACE = 10.0
#: Prefixes of the variables a request carries; everything else stays with the caller.
FORWARDED = (b"CNI_", b"PYCNI_")
#: Commands the spec makes idempotent or read-only: safe to replay if the daemon dies mid-way.
REPLAYABLE = (b"DEL", b"CHECK", b"STATUS", b"GC", b"VERSION")

LOST_ADD = (
    b'{"code":11,"msg":"the pycni daemon took the request but did not answer",'
    b'"details":"the request may have partly run; delete and retry"}\n'
)


class Unavailable(Exception):
    """The daemon did not take the request: running it here is safe."""


class Lost(Exception):
    """The daemon took the request (GO was sent) but gave no answer."""


def main(plugin_type: str) -> None:
    """Entry point of an installed executable."""
    env = posix.environ
    mode = env.get(MODE_ENV.encode(), b"auto")
    if mode != b"off":
        path = env.get(SOCKET_ENV.encode()) or DEFAULT_SOCKET.encode()
        try:
            code, out = forward(plugin_type, path, env, _accept_timeout(env))
        except Unavailable:
            if mode == b"required":
                _finish(1, b'{"code":11,"msg":"the pycni daemon is required but did not take the request"}\n')
        except Lost:
            if env.get(b"CNI_COMMAND", b"") not in REPLAYABLE or mode == b"required":
                _finish(1, LOST_ADD)
        else:
            _finish(code, out)
    _run_here(plugin_type)


def forward(
    plugin_type: str, path: bytes, env: dict[bytes, bytes], accept_timeout: float
) -> tuple[int, bytes]:
    """Send the request to the daemon at `path`; its (exit code, stdout)."""
    sock = _socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(path)
        except OSError:
            raise Unavailable from None
        stdin = _read_stdin()
        header = b"\0".join(
            [
                plugin_type.encode(),
                *(k + b"=" + v for k, v in env.items() if k.startswith(FORWARDED) or k == b"PATH"),
            ]
        )
        frame = b"".join((MAGIC, KIND_CNI, _u32(len(header)), _u32(len(stdin)), header, stdin))
        fds = _own_namespaces()
        try:
            sock.settimeout(accept_timeout)
            sent = sock.sendmsg([frame], [(SOL_SOCKET, SCM_RIGHTS, _fds_bytes(fds))] if fds else [])
            if sent < len(frame):
                sock.sendall(frame[sent:])
            kind = _recv_exact(sock, 1, Unavailable)
            if kind == QUEUED:
                sock.settimeout(QUEUE_TIMEOUT)
                kind = _recv_exact(sock, 1, Unavailable)
            if kind != READY:
                raise Unavailable
            timeout_ms = _recv_u32(sock, Unavailable)
            sock.sendall(GO)
        except OSError:
            raise Unavailable from None
        finally:
            for fd in fds:
                posix.close(fd)
        # committed: from here on the daemon may be running the request
        try:
            sock.settimeout(timeout_ms / 1000 + ANSWER_GRACE)
            kind = _recv_exact(sock, 1, Lost)
            if kind == DIED:
                _die_like(int.from_bytes(_recv_exact(sock, 4, Lost), "big", signed=True))
            if kind != DONE:
                raise Lost
            code = _recv_u32(sock, Lost)
            out = _recv_exact(sock, _recv_u32(sock, Lost), Lost)
        except OSError:
            raise Lost from None
        return code, out
    finally:
        sock.close()


def _run_here(plugin_type: str) -> None:
    """The plugin in this process, exactly as without a daemon (stdin replayed if already read)."""
    from pycni.cni import skel

    if _STDIN[0] is not None:
        from io import BytesIO, TextIOWrapper

        sys.stdin = TextIOWrapper(BytesIO(_STDIN[0]))
    skel.main(plugin_type)


_STDIN: list[bytes | None] = [None]


def _read_stdin() -> bytes:
    """All of stdin, kept so a fallback can replay it (read only once we know a daemon listens)."""
    stdin = sys.stdin
    data = b"" if stdin is None else stdin.buffer.read()
    _STDIN[0] = data
    return data


def _own_namespaces() -> list[int]:
    """Fds of this process's network and mount namespaces, so the daemon runs the request there."""
    fds: list[int] = []
    try:
        for name in ("net", "mnt"):
            fds.append(posix.open(f"/proc/thread-self/ns/{name}", posix.O_RDONLY | posix.O_CLOEXEC))
    except OSError:
        for fd in fds:
            posix.close(fd)
        return []
    return fds


def _fds_bytes(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _accept_timeout(env: dict[bytes, bytes]) -> float:
    raw = env.get(ACCEPT_TIMEOUT_ENV.encode())
    try:
        return float(raw) if raw else ACCEPT_TIMEOUT
    except ValueError:
        return ACCEPT_TIMEOUT


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _recv_u32(sock: _socket, failure: type[Exception]) -> int:
    return int.from_bytes(_recv_exact(sock, 4, failure), "big")


def _recv_exact(sock: _socket, n: int, failure: type[Exception]) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise failure
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _die_like(returncode: int) -> None:
    """End as the worker that ran our request did: by the same signal, or with its exit code."""
    if returncode < 0:
        import signal  # only on this rare path: it costs a few ms to import

        if -returncode not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-returncode, signal.SIG_DFL)
        posix.kill(posix.getpid(), -returncode)
    _finish(returncode if returncode > 0 else 1, b"")


def _finish(code: int, out: bytes) -> None:
    """Relay the answer and exit; `_exit` skips interpreter teardown we have no use for."""
    view = memoryview(out)
    while view:
        view = view[posix.write(1, view) :]
    posix._exit(code)
