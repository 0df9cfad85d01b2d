"""What an installed executable runs: hand the request to the node daemon, or run it here.

This module is the client end of the daemon's wire protocol and it runs on every CNI call,
so it imports only what a `-I -S` interpreter already holds or builtins (`posix`, `sys`,
`_socket`) and the import-free protocol module: even `import os` costs ~1.5 ms there, and
`json`/`re` several more. Nothing heavy loads unless we fall back.

The daemon is an accelerator, never a single point of failure. The launcher falls back to
running the plugin in-process whenever the daemon did not *take* the request: no socket,
nothing listening, a refusal, or no answer within the accept timeout. A request the daemon
took is never run twice: the daemon's worker announces READY and then waits for our GO,
and only GO lets it run; we send GO only while we have not given up, and after GO we never
run an ADD ourselves (a lost ADD is reported as "try again later", after which the runtime
calls DEL). Commands the spec makes idempotent (DEL, CHECK, STATUS, GC, VERSION) are replayed
in-process if the daemon dies after GO. docs/daemon.md has the full argument.

The wire protocol is `pycni.daemon.protocol`'s.
"""

import posix
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET
from _socket import socket as _socket

from pycni.cni import env_names
from pycni.daemon.protocol import (
    ANSWER_GRACE,
    CONNECT_TIMEOUT,
    DEFAULT_ACCEPT_TIMEOUT,
    DIED,
    DONE,
    FORWARDED,
    GO,
    KIND_CNI,
    LOST_ADD,
    MAGIC,
    QUEUE_TIMEOUT,
    QUEUED,
    READY,
    REPLAYABLE,
    REQUIRED_UNAVAILABLE,
)


class Unavailable(Exception):
    """The daemon did not take the request: running it here is safe."""


class Lost(Exception):
    """The daemon took the request (GO was sent) but gave no answer."""


def main(plugin_type: str) -> None:
    """Entry point of an installed executable."""
    env = posix.environ
    mode = env.get(env_names.DAEMON_MODE.encode(), env_names.DEFAULT_DAEMON_MODE.encode())
    if mode != b"off":
        path = env.get(env_names.DAEMON_SOCKET.encode()) or env_names.DEFAULT_DAEMON_SOCKET.encode()
        try:
            code, out = forward(plugin_type, path, env, _accept_timeout(env))
        except Unavailable:
            if mode == b"required":
                _finish(1, REQUIRED_UNAVAILABLE)
        except Lost:
            if env.get(b"CNI_COMMAND", b"") not in REPLAYABLE or mode == b"required":
                _finish(1, LOST_ADD)
        else:
            _finish(code, out)
    run_here(plugin_type)


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
        if fds:
            fds += _pod_netns(env.get(b"CNI_NETNS", b""))
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


def run_here(plugin_type: str) -> None:
    """The plugin in this process, exactly as without a daemon (stdin replayed if already read)."""
    from pycni.registry import main

    if _STDIN[0] is not None:
        from io import BytesIO, TextIOWrapper

        sys.stdin = TextIOWrapper(BytesIO(_STDIN[0]))
    main(plugin_type)


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


#: The file-type bits of st_mode, and a regular file's (a netns file is one): `stat` costs an import.
_S_IFMT, _S_IFREG = 0o170000, 0o100000


def _pod_netns(path: bytes) -> list[int]:
    """CNI_NETNS opened here, in our mount namespace, so the daemon never resolves the path.

    Opened first with O_PATH, which has no side effect on any kind of file; a regular file (what
    a netns file is) is then opened for reading through /proc, a FIFO or device never is. None
    when there is no path or we cannot open it: the daemon then looks the path up as we see it.
    """
    if not path:
        return []
    try:
        fd = posix.open(path, posix.O_PATH | posix.O_CLOEXEC)
    except OSError:
        return []
    try:
        if posix.fstat(fd).st_mode & _S_IFMT == _S_IFREG:
            readable = posix.open(b"/proc/self/fd/%d" % fd, posix.O_RDONLY | posix.O_CLOEXEC)
            posix.close(fd)
            return [readable]
    except OSError:
        pass
    return [fd]


def _fds_bytes(fds: list[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)


def _accept_timeout(env: dict[bytes, bytes]) -> float:
    raw = env.get(env_names.DAEMON_ACCEPT_TIMEOUT.encode())
    try:
        return float(raw) if raw else DEFAULT_ACCEPT_TIMEOUT
    except ValueError:
        return DEFAULT_ACCEPT_TIMEOUT


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
