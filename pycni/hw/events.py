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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycni.hw.inotify import Event, Inotify
from pycni.hw.links import LinkEvents, LinkView

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
