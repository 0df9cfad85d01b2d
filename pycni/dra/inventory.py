"""The node's devices as the driver last evaluated them, shared between the event loop (which
writes), Prepare (which checks a device is there and healthy) and the health streams (which wait
for a change).

A health report covers every published device (Healthy, or Unhealthy with the reason) and every
device a prepared claim still holds that is no longer published: Unhealthy when it left sysfs
(the VF or its PF is gone), Unknown when it is still there but no pool of the config takes it
any more (the driver no longer watches it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pycni.dra.devices import DraDevice
from pycni.hw.watched import Watched

Health = Literal["Healthy", "Unhealthy", "Unknown"]


@dataclass(frozen=True)
class Snapshot:
    devices: Mapping[str, DraDevice] = field(default_factory=dict)
    #: Device names of PCI functions on the node that no pool takes.
    unpooled: frozenset[str] = frozenset()
    #: Device names held by prepared claims.
    prepared: frozenset[str] = frozenset()
    #: When health was last evaluated (Unix seconds).
    checked_at: float = 0.0


@dataclass(frozen=True)
class HealthEntry:
    device: str
    health: Health
    message: str


def report(snap: Snapshot) -> list[HealthEntry]:
    out = [
        HealthEntry(name, "Healthy" if dev.healthy else "Unhealthy", dev.unhealthy or "")
        for name, dev in sorted(snap.devices.items())
    ]
    for name in sorted(snap.prepared - set(snap.devices)):
        if name in snap.unpooled:
            out.append(HealthEntry(name, "Unknown", "no pool of the config takes this device any more"))
        else:
            out.append(HealthEntry(name, "Unhealthy", "the device is gone from the node"))
    return out


def _reported(snap: Snapshot) -> tuple[Mapping[str, DraDevice], frozenset[tuple[str, bool]]]:
    """What a report is made of: the devices, and the prepared ones no longer published (and
    whether they are still on the node). A claim prepared or unprepared changes nothing else, so
    it wakes no stream (each woken stream builds and sends every device)."""
    gone = snap.prepared - snap.devices.keys()
    return snap.devices, frozenset((name, name in snap.unpooled) for name in gone)


class Inventory:
    def __init__(self) -> None:
        self._state = Watched(Snapshot(), key=_reported)
        self.wait_change = self._state.wait_change
        self.close = self._state.close

    def update(
        self, devices: Mapping[str, DraDevice], unpooled: frozenset[str], prepared: frozenset[str]
    ) -> bool:
        """Replaces the evaluation; True (and health streams woken) when the report differs."""
        return self._state.replace(Snapshot(dict(devices), unpooled, prepared, time.time()))

    def devices(self) -> Mapping[str, DraDevice]:
        return self._state.current()[1].devices

    def snapshot(self) -> tuple[int, Snapshot]:
        return self._state.current()

    @property
    def closed(self) -> bool:
        return self._state.closed
