"""Advisory file locks with a deadline, per shared resource (a bridge, a network, a VF).

`fcntl.flock` is released by the kernel when the process dies, so a crashed plugin never
leaves a stale lock; it is per open file description, so threads in one daemon process
exclude each other too. A lock not obtained in time is "try again later" (code 11).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pycni.cni.errors import TryAgainLater
from pycni.cni.runtime import OWN_NETNS

DEFAULT_TIMEOUT = 30.0


@contextmanager
def flock(path: Path, timeout: float = DEFAULT_TIMEOUT, what: str = "") -> Iterator[None]:
    """Hold an exclusive flock on `path` (created 0600) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise TryAgainLater(
                        f"timed out after {timeout:.0f}s waiting for the lock on {what or path}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.005)  # short naps: waits here are short, contenders many
        yield
    finally:
        os.close(fd)


def resource_lock(run_dir: Path, kind: str, name: str) -> Path:
    """The lock file for one named resource of the calling thread's netns, e.g. ("bridge", "cni0").

    Keyed by the netns too, so two simulated nodes sharing one filesystem never share a lock.
    """
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return run_dir / "locks" / f"{kind}-{os.stat(OWN_NETNS).st_ino}-{digest}.lock"
