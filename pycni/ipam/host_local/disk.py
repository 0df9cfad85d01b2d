"""The on-disk store, in the reference host-local's format, so either binary can take over.

`<dataDir>/<network>/` holds exactly what the Go plugin keeps (the source of truth):

- `lock`: empty; writers hold `flock(LOCK_EX)` on it, as go-filemutex does, so the two binaries exclude
  each other;
- `<addr>`: one file per reserved address, content `<containerID>\\r\\n<ifname>` (legacy: `<id>`);
- `last_reserved_ip.<n>`: where range set n's round-robin continues.

Our additions live outside it, in `<dataDir>/.pycni/<network>/` (a name no network can have,
as network names start with an alphanumeric), where the Go plugin never looks: temp files,
the attachment index (index.py) and the boot ID of the reboot guard.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Set
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path

from pycni.cni.files import make_private_dirs
from pycni.cni.ipaddr import IPAddress
from pycni.ipam.host_local import store_files
from pycni.ipam.host_local.index import AttachmentIndex
from pycni.ipam.host_local.store import Owner
from pycni.net.lock import DEFAULT_TIMEOUT, flock

log = logging.getLogger(__name__)

STATE_DIR = ".pycni"
LAST_RESERVED_PREFIX = "last_reserved_ip."


def parse_addr(name: str) -> IPAddress | None:
    """The address a file name stands for; None for `lock`, `last_reserved_ip.*` and strays."""
    if not name or name[0] not in "0123456789abcdefABCDEF:":
        return None
    try:
        return ip_address(name)
    except ValueError:
        return None


class NameSet(Set[IPAddress]):
    """Reserved addresses as the directory's file names: O(1) membership, no parsing up front."""

    def __init__(self, names: Set[str]):
        self.names = names

    def __contains__(self, addr: object) -> bool:
        return str(addr) in self.names

    def __iter__(self) -> Iterator[IPAddress]:
        return (a for a in map(parse_addr, self.names) if a is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class DiskStore:
    """A `Store` over one network directory; mutations only inside `lock()`."""

    def __init__(
        self,
        data_dir: Path,
        network: str,
        lock_timeout: float = DEFAULT_TIMEOUT,
        hook: store_files.Hook = store_files.no_hook,
    ):
        self.net_dir = data_dir / network
        self.state_dir = data_dir / STATE_DIR / network
        self.lock_timeout = lock_timeout
        self.hook = hook
        self.index = AttachmentIndex(self.state_dir / "index", self.net_dir, self.reservations, hook)

    def exists(self) -> bool:
        return self.net_dir.is_dir()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the network lock; index changes made inside are committed on the way out."""
        make_private_dirs(self.net_dir)  # root's alone (the reference makes it 0755)
        make_private_dirs(self.state_dir)
        with flock(self.net_dir / "lock", self.lock_timeout, what=f"network {self.net_dir.name}"):
            try:
                yield
            except BaseException:
                self._commit_quietly()
                raise
            self.index.commit()

    def reserve(self, addr: IPAddress, owner: Owner, set_index: int) -> bool:
        self.index.before_change()
        tmp = self.state_dir / "reserve.tmp"
        if not store_files.create_exclusive(
            self.net_dir / str(addr), owner.encode(), tmp, self.hook, "reserve"
        ):
            return False
        self.hook("reserve-linked")
        self.index.added(addr, owner)
        self._write_last_reserved(set_index, addr)
        return True

    def release(self, addr: IPAddress) -> None:
        path = self.net_dir / str(addr)
        owner = Owner.decode(store_files.read_bytes(path) or b"")
        self.index.before_change()
        path.unlink(missing_ok=True)
        if owner is not None:
            self.index.removed(addr, owner.container_id)

    def last_reserved(self, set_index: int) -> IPAddress | None:
        data = store_files.read_bytes(self.net_dir / f"{LAST_RESERVED_PREFIX}{set_index}")
        return parse_addr(data.decode(errors="replace").strip()) if data else None

    def held_by(self, container_id: str) -> dict[IPAddress, Owner]:
        return self.index.lookup(container_id)

    def taken(self) -> Set[IPAddress]:
        return NameSet(set(os.listdir(self.net_dir)))

    def reservations(self) -> dict[IPAddress, Owner | None]:
        """Every address file with its owner (None: empty or unreadable, e.g. a crashed writer's)."""
        out: dict[IPAddress, Owner | None] = {}
        for name in os.listdir(self.net_dir):
            addr = parse_addr(name)
            if addr is not None:
                data = store_files.read_bytes(self.net_dir / name)
                if data is not None:
                    out[addr] = Owner.decode(data)
        return out

    def recorded_boot_id(self) -> str | None:
        """The boot in which the reboot guard last ran on this store."""
        data = store_files.read_bytes(self.state_dir / "boot_id")
        return None if data is None else data.decode(errors="replace")

    def forget_previous_boot(self, boot_id: str) -> int:
        """The reboot guard: if the store was last used in another boot, release everything.

        No container survives a reboot, so reservations made before it only leak addresses
        (the reference's top complaint). With no recorded boot ID there is nothing to compare
        against: it is recorded and nothing is released. Returns how many were released.
        """
        recorded = self.recorded_boot_id()
        if recorded == boot_id:
            return 0
        released = 0
        if recorded is not None:
            self.index.invalidate()
            for name in os.listdir(self.net_dir):
                if parse_addr(name) is not None:
                    (self.net_dir / name).unlink(missing_ok=True)
                    released += 1
        store_files.replace(
            self.state_dir / "boot_id",
            boot_id.encode(),
            self.state_dir / "boot_id.tmp",
            self.hook,
            "boot-id",
            0o600,
        )
        return released

    def _write_last_reserved(self, set_index: int, addr: IPAddress) -> None:
        """Where round-robin continues: a hint (junk reads as none), written in place like the reference."""
        target = self.net_dir / f"{LAST_RESERVED_PREFIX}{set_index}"
        store_files.overwrite(target, str(addr).encode(), self.hook, "last-reserved")

    def _commit_quietly(self) -> None:
        """On a failing path the index must not mask the error; without a stamp it is rebuilt."""
        try:
            self.index.commit()
        except OSError as err:
            log.warning("could not update the index of %s (%s); it will be rebuilt", self.net_dir, err)


def read_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """This boot's random ID (changes on every boot, unlike anything a clock can say)."""
    return path.read_text().strip()
