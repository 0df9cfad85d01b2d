"""The reservation store contract, the owner record, and an in-memory store for allocator tests.

A reservation is an address held by an attachment (container ID + ifname). The allocator and
the verbs only talk to a `Store`; `disk.DiskStore` keeps the reference's on-disk format, and
`MemoryStore` lets allocation logic be tested without a filesystem.
"""

from __future__ import annotations

from collections.abc import Iterator, Set
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from pycni.cni.ipaddr import IPAddress

LINE_BREAK = "\r\n"


@dataclass(frozen=True)
class Owner:
    """Who holds an address; `ifname is None` marks a legacy file naming only the container."""

    container_id: str
    ifname: str | None = None

    def encode(self) -> bytes:
        """The reference's file content: `<id>\\r\\n<ifname>`, no trailing newline."""
        return f"{self.container_id}{LINE_BREAK}{self.ifname or ''}".encode()

    @classmethod
    def decode(cls, data: bytes) -> Owner | None:
        """Parse a reservation file; None for an empty or unreadable one (a crashed writer's)."""
        text = data.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        container_id, sep, ifname = text.partition(LINE_BREAK)
        return cls(container_id, ifname if sep else None)

    def is_exactly(self, container_id: str, ifname: str) -> bool:
        return self.container_id == container_id and self.ifname == ifname


class Store(Protocol):
    """Reservations of one network. Every method but `lock` expects the lock to be held."""

    def lock(self) -> AbstractContextManager[None]:
        """Serialise with every other writer of this network (other processes included)."""
        ...

    def reserve(self, addr: IPAddress, owner: Owner, set_index: int) -> bool:
        """Take `addr` for `owner` and remember it as the set's last reservation; False if taken."""
        ...

    def release(self, addr: IPAddress) -> None:
        """Free `addr`; an address that is already free is not an error."""
        ...

    def last_reserved(self, set_index: int) -> IPAddress | None:
        """Where the set's round-robin continues from, if known."""
        ...

    def held_by(self, container_id: str) -> dict[IPAddress, Owner]:
        """Every reservation naming `container_id` (any ifname, legacy files too), cheaply."""
        ...

    def taken(self) -> Set[IPAddress]:
        """Every reserved address; may cost a directory listing, so callers use it sparingly."""
        ...

    def reservations(self) -> dict[IPAddress, Owner | None]:
        """Every reservation with its owner, read from the source of truth (GC, index rebuild)."""
        ...


@dataclass
class MemoryStore:
    """A `Store` in a dict, for allocator tests; counts calls so tests can assert costs."""

    owners: dict[IPAddress, Owner] = field(default_factory=dict)
    last: dict[int, IPAddress] = field(default_factory=dict)
    reserve_calls: int = 0
    taken_calls: int = 0

    @contextmanager
    def lock(self) -> Iterator[None]:
        yield

    def reserve(self, addr: IPAddress, owner: Owner, set_index: int) -> bool:
        self.reserve_calls += 1
        if addr in self.owners:
            return False
        self.owners[addr] = owner
        self.last[set_index] = addr
        return True

    def release(self, addr: IPAddress) -> None:
        self.owners.pop(addr, None)

    def last_reserved(self, set_index: int) -> IPAddress | None:
        return self.last.get(set_index)

    def held_by(self, container_id: str) -> dict[IPAddress, Owner]:
        return {a: o for a, o in self.owners.items() if o.container_id == container_id}

    def taken(self) -> Set[IPAddress]:
        self.taken_calls += 1
        return set(self.owners)

    def reservations(self) -> dict[IPAddress, Owner | None]:
        return dict(self.owners)
