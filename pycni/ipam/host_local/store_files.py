"""Small file primitives for the store, each as cheap as what its file needs allows.

The reference writes reservation files in place (create, then write), so a writer killed
between the two leaves an empty file that names no owner. Here a reservation is written to a
temp file first and then linked into place (exclusive: fails if the name exists), so a reader
sees either nothing or the whole content. Temp files live in our state directory, outside the
network directory the Go binary walks, and their names are fixed: every writer holds the
network lock, so a temp file left by a killed writer is simply overwritten.

Files that are only read under the network lock and whose torn content is harmless (the
`last_reserved_ip` hint, index shards and stamp: see index.py) are `overwrite`n in place
instead of renamed over. On ext4 a rename over an existing file makes the kernel flush the
new file's data first (`auto_da_alloc`): 0.3 ms each when the disk is idle, several ms under
load, three times per ADD. No file here is fsynced, as in the reference: nothing needs to
survive a power loss, because no pod does (and the reboot guard releases what a reboot left).
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

#: Called at named points between write steps; a test hook kills the process there.
Hook = Callable[[str], None]


def no_hook(point: str) -> None:
    """The production hook: nothing happens between steps."""


def kill_at(target: str) -> Hook:
    """A hook that SIGKILLs this process at `target`, to test what a crash leaves behind."""

    def hook(point: str) -> None:
        if point == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _write_tmp(tmp: Path, data: bytes, hook: Hook, label: str, mode: int) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        half = len(data) // 2
        os.write(fd, data[:half])
        hook(f"{label}-partial")
        os.write(fd, data[half:])
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def create_exclusive(
    target: Path, data: bytes, tmp: Path, hook: Hook = no_hook, label: str = "create", mode: int = 0o600
) -> bool:
    """Create `target` holding `data` unless it exists; False if it did. All-or-nothing."""
    _write_tmp(tmp, data, hook, label, mode)
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        return _create_in_place(target, data, mode)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _create_in_place(target: Path, data: bytes, mode: int) -> bool:
    """Fallback when the state dir is on another filesystem: the reference's own method."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return True


def replace(
    target: Path, data: bytes, tmp: Path, hook: Hook = no_hook, label: str = "replace", mode: int = 0o600
) -> None:
    """Make `target` hold `data`, atomically for readers."""
    _write_tmp(tmp, data, hook, label, mode)
    try:
        os.replace(tmp, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        tmp.unlink(missing_ok=True)
        target.write_bytes(data)


def overwrite(
    target: Path, data: bytes, hook: Hook = no_hook, label: str = "overwrite", mode: int = 0o600
) -> None:
    """Make `target` hold `data` in place: no temp file, no rename, no flush forced by either.

    Only for files read under the lock whose torn content is harmless. The length is set
    last, so a file that grows or shrinks never ends with bytes of its old content.
    """
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        half = len(data) // 2
        os.pwrite(fd, data[:half], 0)
        hook(f"{label}-partial")
        os.pwrite(fd, data[half:], half)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
