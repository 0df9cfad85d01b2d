"""Address ranges and range sets: canonical form, membership, and round-robin order.

Pure arithmetic on `ipaddress` objects. The config model builds these (and owns the error
texts operators see); the allocator walks them. Nothing here touches the disk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pycni.cni.ipaddr import IPAddress, IPNetwork


@dataclass(frozen=True)
class Range:
    """One allocatable span `start..end` (inclusive) of `subnet`; `gateway` is never handed out."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    @property
    def version(self) -> int:
        return self.subnet.version

    def contains(self, addr: IPAddress) -> bool:
        return addr.version == self.version and int(self.start) <= int(addr) <= int(self.end)

    def overlaps(self, other: Range) -> bool:
        return (
            self.version == other.version
            and int(self.start) <= int(other.end)
            and int(other.start) <= int(self.end)
        )

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def canonical_range(
    subnet: IPNetwork,
    start: IPAddress | None = None,
    end: IPAddress | None = None,
    gateway: IPAddress | None = None,
) -> Range:
    """Fill in the reference's defaults and reject what it rejects.

    Defaults: gateway and start are network+1 (the iterator skips the gateway), end is the
    last address, minus the broadcast for IPv4. Raises ValueError with the reason.
    """
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise ValueError(f"Network {subnet} too small to allocate from")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    gateway = first if gateway is None else gateway
    start = first if start is None else start
    end = last if end is None else end
    for label, addr in (("gateway", gateway), ("rangeStart", start), ("rangeEnd", end)):
        if addr.version != subnet.version or addr not in subnet:
            raise ValueError(f"{label} {addr} not in network {subnet}")
    if int(start) > int(end):
        raise ValueError(f"rangeStart {start} is after rangeEnd {end}")
    return Range(subnet, start, end, gateway)


@dataclass(frozen=True)
class RangeSet:
    """Ranges of one family; one address is allocated per set, from whichever range has room."""

    ranges: tuple[Range, ...]

    def __post_init__(self) -> None:
        if not self.ranges:
            raise ValueError("empty range set")
        if len({r.version for r in self.ranges}) > 1:
            raise ValueError("mixed address families")
        for i, r1 in enumerate(self.ranges):
            for r2 in self.ranges[i + 1 :]:
                if r1.overlaps(r2):
                    raise ValueError(f"subnets {r1} and {r2} overlap")

    @property
    def version(self) -> int:
        return self.ranges[0].version

    def range_for(self, addr: IPAddress) -> Range | None:
        return next((r for r in self.ranges if r.contains(addr)), None)

    def contains(self, addr: IPAddress) -> bool:
        return self.range_for(addr) is not None

    def overlaps(self, other: RangeSet) -> bool:
        return any(r1.overlaps(r2) for r1 in self.ranges for r2 in other.ranges)

    def size(self) -> int:
        """How many addresses the set can hand out (gateways excluded)."""
        return sum(int(r.end) - int(r.start) + 1 - r.contains(r.gateway) for r in self.ranges)

    def candidates(self, last_reserved: IPAddress | None = None) -> Iterator[tuple[IPAddress, Range]]:
        """Every allocatable address once, in the reference's round-robin order.

        Starts right after `last_reserved` (when it is in the set), runs to the end of its
        range, continues with the following ranges, wraps, and ends with `last_reserved`
        itself, so a crash-looping container does not get the same address straight back.
        Lazy: callers stop at the first free address, so a /64 is never enumerated.
        """
        first, offset = 0, 0
        if last_reserved is not None:
            for i, r in enumerate(self.ranges):
                if r.contains(last_reserved):
                    first, offset = i, int(last_reserved) - int(r.start) + 1
                    break
        n = len(self.ranges)
        for k in range(n + 1):
            r = self.ranges[(first + k) % n]
            lo, hi = int(r.start), int(r.end)
            if k == 0:
                lo += offset
            elif k == n:
                hi = int(r.start) + offset - 1
            yield from _span(r, lo, hi)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


def _span(r: Range, lo: int, hi: int) -> Iterator[tuple[IPAddress, Range]]:
    gateway = int(r.gateway)
    for value in range(lo, hi + 1):
        if value != gateway:
            yield (IPv4Address(value) if r.version == 4 else IPv6Address(value)), r
