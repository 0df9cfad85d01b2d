"""The daemon's socket: root-only, replaced atomically, never a network listener.

The socket is mode 0600 inside a directory of mode 0700, and every connection's peer
credentials (SO_PEERCRED) are checked as well, so a file mode mistake does not open the
daemon to other users. A socket left by a daemon that died is replaced on start; one that
still answers is not (two daemons would each believe they own the node).
"""

from __future__ import annotations

import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

BACKLOG = 256


class ListenerError(Exception):
    pass


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    path: Path
    #: Identity of our socket file, so shutdown removes ours and never a successor's.
    identity: tuple[int, int]

    def close(self) -> None:
        self.sock.close()
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self.identity:
            self.path.unlink(missing_ok=True)


def listen(path: Path) -> Listener:
    """Bind `path` (replacing a stale socket) and listen."""
    _prepare_dir(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise ListenerError(f"{path} exists and is not a socket")
        if _answers(path):
            raise ListenerError(f"another daemon is serving {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # atomic: a caller sees the old socket or ours, never none
        st = os.lstat(path)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        tmp.unlink(missing_ok=True)
        raise
    return Listener(sock, path, (st.st_dev, st.st_ino))


def _prepare_dir(directory: Path) -> None:
    """Create the directory 0700, or insist that an existing one is ours and 0700."""
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
    st = os.stat(directory)
    if st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise ListenerError(
            f"{directory} must be owned by uid {os.geteuid()} with mode 0700 "
            f"(it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})"
        )


def _answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end, as the kernel recorded it at connect()."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)
