"""A self-pipe that wakes a selector loop, from a signal handler or another thread.

The node daemon's supervisor hands its write end to `signal.set_wakeup_fd`, so SIGTERM and
SIGCHLD end its `select`; the device plugin's and the DRA driver's loop (`hw.events.EventLoop`)
writes to it from `request_stop` and other threads. Every loop watches the read end and empties
it when it is readable. Standard library only.
"""

from __future__ import annotations

import contextlib
import os


class WakePipe:
    """Both ends non-blocking and close-on-exec; `fileno()` is the end a selector watches."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def fileno(self) -> int:
        return self.read_fd

    def wake(self) -> None:
        """Make the read end readable; safe in a signal handler, and when the pipe is full."""
        with contextlib.suppress(OSError):
            os.write(self.write_fd, b"x")

    def drain(self) -> None:
        """Read everything pending without blocking, so the next `select` waits again."""
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
