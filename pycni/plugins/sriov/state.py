"""What sriov keeps per attachment and per VF, under `<state dir>/sriov/`.

- `attachments/<network>~<containerID>~<ifname>.json`: a `VfAttachment`, written (0600, fsync'd,
  write-then-rename) before ADD changes anything: the VF's PF-side snapshot and its netdev's name,
  MAC, MTU, admin state, alias and altnames, plus what ADD set. DEL, GC and ADD's rollback restore
  from it, so the VF gets its own original state back, not hard-coded defaults.
- `allocations/<PCI address>.json`: an `Allocation`, the claim on the VF (sriov-cni's
  `/var/lib/cni/sriov/pci/<addr>`): which attachment holds it and in which netns. A claim whose
  netns is gone, or is now another namespace at the same path, is stale and may be reclaimed.

Both are read and written under the VF's lock (`vf_locked`), held for the whole ADD or DEL.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pycni.attach.device.record import DeviceState, RecordStore
from pycni.cni import callerview
from pycni.cni.files import make_private_dirs, write_atomic
from pycni.cni.runtime import is_netns_file
from pycni.net import lock
from pycni.net.vf_state import VfSettings, VfState

log = logging.getLogger(__name__)

#: sriov-cni waits up to 60 s for a VF's lock; a request the runtime retries anyway waits less.
LOCK_TIMEOUT = 30.0


class VfAttachment(DeviceState):
    """One VF lent to a pod: the netdev facts of `DeviceState`, plus the VF's PF side."""

    pf_netdev: str
    vf_index: int
    #: Every PF-side setting as it was before ADD changed anything.
    original: VfState
    #: The PF-side settings ADD set (recorded before setting them): what release puts back.
    applied: VfSettings
    #: `<dev>:<inode>` of the pod netns at ADD, so a path reused by another netns is not the pod.
    netns_id: str = ""

    @property
    def pci(self) -> str:
        assert self.pci_address is not None
        return self.pci_address


class Allocation(BaseModel):
    """Who holds a VF."""

    model_config = ConfigDict(frozen=True)

    network: str
    container_id: str
    ifname: str
    netns: str
    netns_id: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.network, self.container_id, self.ifname)

    def describe(self) -> str:
        return f"container {self.container_id} (network {self.network!r}, interface {self.ifname})"

    def alive(self) -> bool:
        """The holder's netns still exists (and is the same namespace it was at ADD)."""
        return netns_alive(self.netns, self.netns_id)


def netns_id(path: str) -> str:
    """`<dev>:<inode>` of the netns at `path` (a namespace's identity; its path may be reused)."""
    st = callerview.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def netns_alive(path: str, expected_id: str = "") -> bool:
    if not path or not is_netns_file(path):
        return False
    try:
        return not expected_id or netns_id(path) == expected_id
    except FileNotFoundError:
        return False


class AllocationStore:
    """One file per claimed VF, named by its PCI address."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, pci: str) -> Path:
        return self.directory / f"{pci}.json"

    def load(self, pci: str) -> Allocation | None:
        """The claim on `pci`; an unreadable one counts as none (it cannot name a live holder)."""
        try:
            return Allocation.model_validate_json(self.path(pci).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError):
            return None

    def save(self, pci: str, allocation: Allocation) -> None:
        write_atomic(self.path(pci), allocation.model_dump_json(indent=1).encode(), 0o600)

    def remove(self, pci: str) -> None:
        self.path(pci).unlink(missing_ok=True)


class SriovCniFiles:
    """One sriov-cni directory: the NetConf caches and the PCI allocation markers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def cache(self, container_id: str, ifname: str) -> Path:
        return self.directory / f"{container_id}-{ifname}"

    def marker(self, pci: str) -> Path:
        return self.directory / "pci" / pci

    def read(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.cache(container_id, ifname).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("ignoring sriov-cni's unreadable cache %s: %s", self.cache(container_id, ifname), err)
            return None
        return data if isinstance(data, dict) and data.get("deviceID") else None

    def marked_netns(self, pci: str) -> str:
        try:
            return self.marker(pci).read_text()
        except OSError:
            return ""

    def write(self, container_id: str, ifname: str, pci: str, netns: str, cached: dict[str, Any]) -> None:
        """sriov-cni's cache and marker, so sriov-cni's DEL can release the VF."""
        make_private_dirs(self.directory)
        # as sriov-cni's json.Marshal of the merged map: keys sorted at every level, compact
        data = json.dumps(cached, sort_keys=True, separators=(",", ":")).encode()
        write_atomic(self.cache(container_id, ifname), data, 0o600)
        make_private_dirs(self.marker(pci).parent)
        write_atomic(self.marker(pci), netns.encode(), 0o600)

    def remove(self, container_id: str, ifname: str, pci: str) -> None:
        """Both files (the marker is sriov-cni's claim on the VF this attachment held)."""
        self.cache(container_id, ifname).unlink(missing_ok=True)
        self.marker(pci).unlink(missing_ok=True)

    def caches(self) -> list[str]:
        """The names of the cache files (`<containerID>-<ifname>`)."""
        try:
            return sorted(n for n in os.listdir(self.directory) if (self.directory / n).is_file())
        except FileNotFoundError:
            return []


class Stores:
    """The attachment records and the VF claims of one state directory, and sriov-cni's files
    (`pycni.plugins.sriov.reference`), kept beside them for a node rolled back to sriov-cni."""

    def __init__(self, state_dir: Path, sriov_dir: Path | None = None) -> None:
        base = state_dir / "sriov"
        self.attachments: RecordStore[VfAttachment] = RecordStore(base / "attachments", VfAttachment)
        self.allocations = AllocationStore(base / "allocations")
        self.sriov_cni = SriovCniFiles(sriov_dir or state_dir.parent / "sriov")

    def claim(self, rec: VfAttachment) -> None:
        """Record the attachment, then its claim on the VF (in that order: a claim always has a record)."""
        self.attachments.save(rec)
        self.allocations.save(
            rec.pci, Allocation(network=rec.network, container_id=rec.container_id, ifname=rec.ifname,
                                netns=rec.netns, netns_id=rec.netns_id)
        )  # fmt: skip

    def forget(self, rec: VfAttachment) -> None:
        """Drop the attachment's claim on the VF (unless it is someone else's by now), then its record.

        In that order: a record without a claim is harmless (its DEL restores what is already so),
        a claim without a record would block the VF until its netns goes.
        """
        holder = self.allocations.load(rec.pci)
        if holder is None or holder.key == rec.key:
            self.allocations.remove(rec.pci)
            self.sriov_cni.remove(rec.container_id, rec.ifname, rec.pci)
        else:
            self.sriov_cni.cache(rec.container_id, rec.ifname).unlink(missing_ok=True)
        self.attachments.remove(rec)

    def holder(self, pci: str) -> Allocation | None:
        return self.allocations.load(pci)


@contextmanager
def vf_locked(run_dir: Path, pci: str) -> Iterator[None]:
    """The VF's lock, around everything that reads or changes its claim, its PF side or its netdev."""
    with lock.flock(lock.resource_lock(run_dir, "sriov", pci), LOCK_TIMEOUT, what=f"VF {pci}"):
        yield
