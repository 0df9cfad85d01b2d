"""A node service's event sources (the device plugin's, the DRA driver's), opened together and
closed together.

- inotify: the service's own directories (sockets, the config file's directory), and sysfs
  `bus/pci/devices` plus the PCI driver directories (on the real /sys these stay quiet, but a fake
  tree in tests speaks through them);
- netlink: link events in the namespace holding the node's netdevs, and a view for dumps;
- udev: kernel uevents for the `pci` and `net` subsystems (hot-plug, bind/unbind, VFs created by
  `sriov_numvfs`). Optional: without permission to open it we log and rely on the others.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.cni.wakeup import WakePipe
from pycni.hw.inotify import Event, Inotify
from pycni.hw.linkwatch import LinkEvents, LinkView

log = logging.getLogger(__name__)


@dataclass
class Sources:
    inotify: Inotify
    drivers_dir: Path
    links: LinkView | None = None
    link_events: LinkEvents | None = None
    udev: Any = None

    @classmethod
    def open(
        cls,
        sysfs_root: Path,
        directories: Iterable[Path],
        *,
        links_netns: str | None = None,
        use_netlink: bool = True,
        use_udev: bool = True,
    ) -> Sources:
        """Watches `directories` (which must exist) and sysfs; netlink in `links_netns` (None: ours)."""
        ino = Inotify()
        pci = sysfs_root / "bus" / "pci"
        sources = cls(ino, pci / "drivers")
        try:
            for directory in directories:
                ino.watch(directory)
            for directory in (pci / "devices", pci / "drivers"):
                if directory.is_dir():
                    ino.watch(directory)
            for driver in sorted(p for p in (pci / "drivers").glob("*") if p.is_dir()):
                ino.watch(driver)
            if use_netlink:
                sources.links = LinkView(links_netns)
                sources.link_events = LinkEvents(links_netns)
            if use_udev:
                sources.udev = _open_udev()
        except BaseException:
            sources.close()
            raise
        return sources

    def selectables(self) -> list[tuple[Any, str]]:
        out: list[tuple[Any, str]] = [(self.inotify.fileno(), "inotify")]
        if self.link_events is not None:
            out.append((self.link_events.fileno(), "netlink"))
        if self.udev is not None:
            out.append((self.udev.fileno(), "udev"))
        return out

    def read_inotify(self) -> list[Event]:
        """Pending inotify events; a new PCI driver directory gets its own watch on the way."""
        events = self.inotify.read()
        for event in events:
            if (
                event.directory == self.drivers_dir
                and event.appeared
                and (self.drivers_dir / event.name).is_dir()
            ):
                self.inotify.watch(self.drivers_dir / event.name)
        return events

    def drain(self, tag: str) -> bool:
        """Consumes a netlink or udev wake-up; True when something arrived."""
        if tag == "netlink" and self.link_events is not None:
            return self.link_events.drain() > 0
        if tag == "udev" and self.udev is not None:
            relevant = False
            while (device := self.udev.poll(timeout=0)) is not None:
                relevant |= device.subsystem in ("pci", "net")
            return relevant
        return False

    def close(self) -> None:
        for closer in (self.inotify, self.links, self.link_events):
            if closer is not None:
                try:
                    closer.close()
                except Exception as err:
                    log.debug("close failed", extra={"error": str(err)})
        self.links = self.link_events = None
        self.udev = None


RESCAN = "rescan"  # sysfs or the config may have changed: rediscover
HEALTH = "health"  # only link state (or what is in use) changed: re-evaluate health


class EventLoop:
    """A node service's loop: its event sources and a wake-up pipe on one selector, each burst of
    events coalesced for `debounce` seconds into one pass (a full rescan if any event asked for one).

    `handle(tag)` turns a readable source into RESCAN, HEALTH or None (the pipe's tag is "wake");
    `apply(rescan)` makes the pass; `deadline()` names another time to wake at and `tick()` runs on
    every turn (the device plugin's registration retries). Nothing polls on a timer.
    """

    def __init__(self, debounce: float) -> None:
        self.debounce = debounce
        self._stop = threading.Event()
        self._wakeup = WakePipe()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wake(self) -> None:
        """Safe from a signal handler or another thread."""
        self._wakeup.wake()

    def request_stop(self) -> None:
        self._stop.set()
        self.wake()

    def run(
        self,
        sources: Sources,
        handle: Callable[[str], str | None],
        apply: Callable[[bool], None],
        deadline: Callable[[], float | None] = lambda: None,
        tick: Callable[[], None] = lambda: None,
    ) -> None:
        """Until `request_stop`."""
        sel = selectors.DefaultSelector()
        sel.register(self._wakeup, selectors.EVENT_READ, "wake")
        for fileobj, tag in sources.selectables():
            sel.register(fileobj, selectors.EVENT_READ, tag)
        dirty_at: float | None = None
        rescan = False
        try:
            while not self._stop.is_set():
                tick()
                wake_at = [t for t in (deadline(), dirty_at) if t is not None]
                timeout = max(0.0, min(wake_at) - time.monotonic()) if wake_at else None
                for key, _ in sel.select(timeout):
                    if key.data == "wake":
                        self._wakeup.drain()
                    change = handle(key.data)
                    if change is not None:
                        rescan |= change == RESCAN
                        dirty_at = dirty_at or time.monotonic() + self.debounce
                if dirty_at is not None and time.monotonic() >= dirty_at and not self._stop.is_set():
                    apply(rescan)
                    dirty_at, rescan = None, False
        finally:
            sel.close()

    def close(self) -> None:
        self._wakeup.close()


def _open_udev() -> Any:
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="kernel")
        monitor.start()
        return monitor
    except Exception as err:
        log.warning(
            "udev events unavailable; hot-plug is seen through sysfs and netlink only",
            extra={"error": str(err)},
        )
        return None
