"""A value that threads wait on: one writer replaces it, readers block until it changes.

What a node service's streams (the device plugin's ListAndWatch, the DRA driver's health stream)
need from the state its event loop keeps: a version that moves only when the content does, a
wait with a timeout (so a stream can check its client is still there), and a close that releases
every waiter at shutdown.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Watched(Generic[T]):
    def __init__(self, value: T, key: Callable[[T], Any] = lambda value: value) -> None:
        """`key`: what counts as a change (the whole value by default)."""
        self._cond = threading.Condition()
        self._value = value
        self._key = key
        self._version = 0
        self._closed = False

    def replace(self, value: T) -> bool:
        """Stores `value`; True, and waiters woken, when its key differs from the old one's."""
        with self._cond:
            changed = bool(self._key(value) != self._key(self._value))
            self._value = value
            if changed:
                self._version += 1
                self._cond.notify_all()
            return changed

    def current(self) -> tuple[int, T]:
        with self._cond:
            return self._version, self._value

    def wait_change(self, version: int, timeout: float) -> bool:
        """Waits until the version moves from `version` (True), or timeout or close (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._version != version or self._closed, timeout)
            return self._version != version

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
