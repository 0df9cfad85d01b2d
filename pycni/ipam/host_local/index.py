"""Which addresses a container holds, answered without reading every reservation file.

The reference answers "what does container X hold?" (ADD's duplicate check, DEL, CHECK) by
reading every file of the network, so each call costs O(reservations). This index answers it
from one small file. It is a cache: the reference's per-address files stay the source of
truth, and the index is rebuilt from them whenever it cannot be trusted.

Layout, under `<dataDir>/.pycni/<network>/index/`:

- `00`..`ff`, the shard of a container ID (crc32 & 0xff): JSON `{"<addr>": ["<id>", "<ifname>"|null]}`;
- `stamp`: `<st_ino> <st_mtime_ns>` of the network directory when the shards last matched it.

Trust rule: shards are used only while `stamp` matches the network directory. A writer
deletes `stamp` before its first change to the directory and writes it after its last one,
so a writer killed in between leaves no stamp and the next caller rebuilds. Anyone else
creating or removing a reservation (the Go binary) changes the directory's mtime, which no
longer matches the stamp. All of this happens under the network lock.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Mapping
from ipaddress import ip_address
from pathlib import Path

from pycni.cni.ipaddr import IPAddress
from pycni.ipam.host_local import store_files
from pycni.ipam.host_local.store import Owner

SHARDS = 256
Shard = dict[str, list[str | None]]
Scan = Callable[[], Mapping[IPAddress, Owner | None]]


def shard_of(container_id: str) -> int:
    return zlib.crc32(container_id.encode()) % SHARDS


class AttachmentIndex:
    """The sharded container → addresses cache of one network."""

    def __init__(
        self, index_dir: Path, net_dir: Path, scan: Scan, hook: store_files.Hook = store_files.no_hook
    ):
        self.dir = index_dir
        self.net_dir = net_dir
        self.scan = scan
        self.hook = hook
        self.rebuilds = 0
        self._shards: dict[int, Shard] = {}
        self._dirty: set[int] = set()
        self._trusted = False
        self._changing = False

    def lookup(self, container_id: str) -> dict[IPAddress, Owner]:
        shard = self._shard(shard_of(container_id))
        return {ip_address(a): Owner(cid, ifn) for a, (cid, ifn) in shard.items() if cid == container_id}

    def before_change(self) -> None:
        """Call before touching the network directory: from here until `commit`, no stamp."""
        if self._changing:
            return
        self._ensure_trusted()
        self._stamp_path.unlink(missing_ok=True)
        self._changing = True

    def added(self, addr: IPAddress, owner: Owner) -> None:
        n = shard_of(owner.container_id)
        self._shard(n)[str(addr)] = [owner.container_id, owner.ifname]
        self._dirty.add(n)

    def removed(self, addr: IPAddress, container_id: str) -> None:
        n = shard_of(container_id)
        if self._shard(n).pop(str(addr), None) is not None:
            self._dirty.add(n)

    def commit(self) -> None:
        """Write the changed shards, then the stamp that makes them trusted again."""
        if not self._changing:
            return
        for n in sorted(self._dirty):
            self._write_shard(n)
        self._dirty.clear()
        self.hook("index-before-stamp")
        self._write_stamp()
        self._changing = False

    def invalidate(self) -> None:
        """Forget everything; the next use rebuilds from the reservation store_files."""
        self._stamp_path.unlink(missing_ok=True)
        self._shards.clear()
        self._dirty.clear()
        self._trusted = False
        self._changing = False

    def rebuild(self, owners: Mapping[IPAddress, Owner | None] | None = None) -> None:
        """Regenerate every shard from a full read of the store (or from `owners`, just read)."""
        self.rebuilds += 1
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._stamp_path.unlink(missing_ok=True)
        owners = self.scan() if owners is None else owners
        self._shards = {n: {} for n in range(SHARDS)}
        for addr, owner in owners.items():
            if owner is not None:
                self._shards[shard_of(owner.container_id)][str(addr)] = [owner.container_id, owner.ifname]
        for n in range(SHARDS):
            self._write_shard(n)
        self._dirty.clear()
        self._write_stamp()
        self._trusted = True

    @property
    def _stamp_path(self) -> Path:
        return self.dir / "stamp"

    def _current_stamp(self) -> bytes:
        st = os.stat(self.net_dir)
        return f"{st.st_ino} {st.st_mtime_ns}".encode()

    def _ensure_trusted(self) -> None:
        if self._trusted:
            return
        if store_files.read_bytes(self._stamp_path) == self._current_stamp():
            self._trusted = True
        else:
            self.rebuild()

    def _shard(self, n: int) -> Shard:
        self._ensure_trusted()
        shard = self._shards.get(n)
        if shard is None:
            shard = self._load_shard(n)
            self._shards[n] = shard
        return shard

    def _load_shard(self, n: int) -> Shard:
        data = store_files.read_bytes(self.dir / f"{n:02x}")
        if data is None:
            return {}
        try:
            shard: Shard = json.loads(data)
        except ValueError:
            self.rebuild()  # a shard is rewritten only while unstamped: only tampering gets here
            return self._shards[n]
        return shard

    def _write_shard(self, n: int) -> None:
        path = self.dir / f"{n:02x}"
        shard = self._shards.get(n)
        if not shard:
            path.unlink(missing_ok=True)
            return
        data = json.dumps(shard, separators=(",", ":")).encode()
        store_files.overwrite(path, data, self.hook, "index", mode=0o600)  # trusted only once stamped

    def _write_stamp(self) -> None:
        """Written into a file `before_change` removed: a torn stamp never matches, so it is rebuilt."""
        store_files.overwrite(self._stamp_path, self._current_stamp(), self.hook, "stamp", 0o600)
