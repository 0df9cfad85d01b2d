"""An exclusive `flock` on a network's `lock` file, with a deadline.

`flock` on the very file the reference locks (go-filemutex takes LOCK_EX on `<dir>/lock`)
is what lets our plugin and the Go binary share a store safely. A hand-written loop rather
than a library: the contract is one syscall, and a library would add import time to every
ADD without changing the semantics. Waiting past the deadline is `TryAgainLater` (code 11),
which tells the runtime the failure is transient.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pycni.cni.errors import TryAgainLater

DEFAULT_TIMEOUT = 30.0
_MAX_NAP = 0.005


@contextmanager
def flocked(path: Path, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold LOCK_EX on `path` (created if missing) for the block; closing the fd unlocks."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, path, timeout)
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    """Poll with a short, growing nap: fair enough for dozens of contenders, and bounded."""
    deadline = time.monotonic() + timeout
    nap = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TryAgainLater(f"timed out after {timeout:g}s waiting for the lock on {path}") from None
            time.sleep(min(nap, remaining))
            nap = min(nap * 2, _MAX_NAP)
