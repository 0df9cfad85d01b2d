"""What a device plugin must put back, kept per attachment in a small file, and who holds which device.

The ifalias the reference relies on survives a trip through a dying netns, but it holds only the
name and a pod can overwrite it. So ADD writes, before it touches the device, a record of the
original name, index, MAC, MTU, admin state, alias and altnames to
`<state dir>/<plugin>/<network>~<containerID>~<ifname>.json` (0600, write-then-rename).
The records are also the claim on a device: one that names it, for another attachment, means the
device is taken. A record marked `released` is one whose DEL could not find the device (the netns
died and the device had not come back yet); ADD and GC restore such an orphan when it shows up.
A plugin that must put back more (sriov: the VF's PF-side settings) subclasses `DeviceState` and
gives its store the subclass.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from pycni.cni.config import Attachment
from pycni.cni.files import make_private_dirs, write_atomic

SUFFIX = ".json"

log = logging.getLogger(__name__)


class DeviceState(BaseModel):
    """One attachment: which device it holds and how the device looked in the node netns."""

    model_config = ConfigDict(frozen=True)

    network: str
    container_id: str
    ifname: str
    netns: str
    mode: Literal["netdev", "userspace"]
    selector: str
    name: str = ""
    index: int = 0
    mac: str = ""
    mtu: int = 0
    up: bool = False
    alias: str = ""
    altnames: tuple[str, ...] = ()
    #: The MAC the plugin gave the device in the pod, when it changed it (sriov's `mac`).
    pod_mac: str = ""
    pci_address: str | None = None
    device_info_file: str | None = None
    released: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)

    def describe(self) -> str:
        return f"container {self.container_id} (network {self.network!r}, interface {self.ifname})"


State = TypeVar("State", bound=DeviceState)


class RecordStore(Generic[State]):
    """The directory of one plugin's records, each a `model` (a `DeviceState`); every write is atomic."""

    def __init__(self, directory: Path, model: type[State]) -> None:
        self.directory = Path(directory)
        self.model = model

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        # network names and container ids cannot contain "~" (spec patterns), so names never collide
        return self.directory / f"{network}~{container_id}~{ifname}{SUFFIX}"

    def save(self, state: State) -> None:
        write_atomic(self.path(*state.key), state.model_dump_json(indent=1).encode(), 0o600)

    def load(self, network: str, container_id: str, ifname: str) -> State | None:
        return self._read(self.path(network, container_id, ifname))

    def remove(self, state: DeviceState) -> None:
        self.path(*state.key).unlink(missing_ok=True)

    def all(self) -> list[State]:
        """Every readable record; a damaged one is logged and skipped, never fatal."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        records = (self._read(self.directory / n) for n in names if n.endswith(SUFFIX))
        return [r for r in records if r is not None]

    def collectable(self, network: str, valid: Iterable[Attachment]) -> list[State]:
        """GC's work: this network's records that were released or whose attachment is not valid."""
        keep = {(a.container_id, a.ifname) for a in valid}
        return [
            rec
            for rec in self.all()
            if rec.network == network and (rec.released or (rec.container_id, rec.ifname) not in keep)
        ]

    def writable(self) -> bool:
        try:
            make_private_dirs(self.directory)
        except OSError:
            return False
        return os.access(self.directory, os.W_OK | os.X_OK)

    def _read(self, path: Path) -> State | None:
        try:
            return self.model.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as err:
            log.warning("ignoring unreadable device state %s: %s", path, err)
            return None


class StateStore(RecordStore[DeviceState]):
    """host-device's records: plain `DeviceState`s."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, DeviceState)
