"""A minimal inotify over ctypes: directory watches whose fd goes into the service's selector.

Why not `pyroute2.inotify`: it blocks in its own poll loop, closes its fds while a reader may still
be polling them, and fails on events for a watch it no longer knows. We need a non-blocking fd to
multiplex with netlink and udev, plus a clean stop, which is a few dozen lines on libc.

Directories are watched, never files: kubelet re-creates `kubelet.sock` (possibly with the same
inode) and editors and ConfigMaps replace a config by rename, both of which only show on the directory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path

IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_IGNORED = 0x8000
IN_Q_OVERFLOW = 0x4000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

#: What the service wants from a directory: entries appearing, disappearing or rewritten, and the
#: directory itself going (removed, or renamed away: its watch then follows it, so it is dropped).
DIR_EVENTS = (
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF
)

_HEADER = struct.Struct("iIII")
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@dataclass(frozen=True)
class Event:
    directory: Path
    name: str
    mask: int

    @property
    def appeared(self) -> bool:
        return bool(self.mask & (IN_CREATE | IN_MOVED_TO))

    @property
    def vanished(self) -> bool:
        return bool(self.mask & (IN_DELETE | IN_MOVED_FROM))


class Inotify:
    """An inotify instance; `read()` returns the pending events without blocking."""

    def __init__(self) -> None:
        fd = int(_libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self._fd = fd
        self._watches: dict[int, Path] = {}

    def fileno(self) -> int:
        return self._fd

    def watch(self, directory: Path) -> None:
        wd = _libc.inotify_add_watch(self._fd, os.fsencode(directory), DIR_EVENTS)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_add_watch {directory}: {os.strerror(code)}")
        self._watches[wd] = Path(directory)

    def watching(self, directory: Path) -> bool:
        """True while `directory` has a live watch (a removed directory's watch ends by itself)."""
        return Path(directory) in self._watches.values()

    def read(self) -> list[Event]:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return []
        except OSError as err:
            if err.errno == errno.EINTR:
                return []
            raise
        events = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            raw = data[offset + _HEADER.size : offset + _HEADER.size + length]
            offset += _HEADER.size + length
            name = os.fsdecode(raw.rstrip(b"\0"))
            directory = self._watches.get(wd)
            if mask & IN_IGNORED:
                self._watches.pop(wd, None)
            elif mask & IN_MOVE_SELF and self._watches.pop(wd, None) is not None:
                _libc.inotify_rm_watch(self._fd, wd)  # the path no longer names what it watches
            if directory is not None or mask & IN_Q_OVERFLOW:
                events.append(Event(directory or Path("/"), name, mask))
        return events

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
