"""Choosing the address one attachment gets from one range set.

Round-robin from the set's last reservation, as the reference does, without reading the
whole store: each candidate costs one exclusive create (`Store.reserve`). Only after
`PROBE_LIMIT` taken candidates in a row (a nearly full set) is the store listed, once, and
the walk continues with in-memory membership tests. So the common case is O(1) and the worst
case one directory listing, never one file read per address.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_interface

from pycni.cni.errors import PluginError
from pycni.cni.ipaddr import IPAddress
from pycni.ipam.host_local.range_set import Range, RangeSet
from pycni.ipam.host_local.store import Owner, Store

PROBE_LIMIT = 32


class AllocationError(PluginError):
    """No address could be given out: exhausted, requested one taken, or a conflicting retry."""


@dataclass(frozen=True)
class Lease:
    """An address given to an attachment; `fresh` is False when ADD found it already held."""

    address: IPv4Interface | IPv6Interface
    gateway: IPAddress
    fresh: bool


class Allocator:
    """Allocation in one range set (`set_index` names its `last_reserved_ip.<n>` file)."""

    def __init__(self, range_set: RangeSet, store: Store, set_index: int, probe_limit: int = PROBE_LIMIT):
        self.range_set = range_set
        self.store = store
        self.set_index = set_index
        self.probe_limit = probe_limit

    def allocate(self, owner: Owner, requested: IPAddress | None = None) -> Lease:
        """The attachment's address in this set, reserving one unless it already holds one.

        An ADD retried for the same (container, ifname) returns what the first one reserved,
        so a runtime that lost the first result does not leak an address or get an error.
        """
        held = self.held(owner)
        if held is not None:
            if requested is not None and requested != held:
                raise AllocationError(
                    f"{held} has been allocated to {owner.container_id}/{owner.ifname}, "
                    f"cannot also allocate requested IP {requested}"
                )
            return self._lease(held, fresh=False)
        if requested is not None:
            return self._reserve_requested(owner, requested)
        return self._reserve_next(owner)

    def held(self, owner: Owner) -> IPAddress | None:
        """The lowest address in this set reserved for exactly this attachment."""
        mine = [a for a, o in self.store.held_by(owner.container_id).items() if o == owner]
        return min((a for a in mine if self.range_set.contains(a)), default=None)

    def _reserve_requested(self, owner: Owner, requested: IPAddress) -> Lease:
        r = self._range(requested)
        if requested == r.gateway:
            raise AllocationError(f"requested ip {requested} is subnet's gateway")
        if not self.store.reserve(requested, owner, self.set_index):
            raise AllocationError(
                f"requested IP address {requested} is not available in range set {self.range_set}"
            )
        return self._lease(requested, fresh=True)

    def _reserve_next(self, owner: Owner) -> Lease:
        taken: Set[IPAddress] | None = None
        misses = 0
        for addr, _ in self.range_set.candidates(self.store.last_reserved(self.set_index)):
            if taken is not None and addr in taken:
                continue
            if self.store.reserve(addr, owner, self.set_index):
                return self._lease(addr, fresh=True)
            misses += 1
            if taken is None and misses >= self.probe_limit:
                taken = self.store.taken()
        raise AllocationError(f"no IP addresses available in range set: {self.range_set}")

    def first_free(self) -> IPAddress | None:
        """An address ADD could take now (for STATUS): one store listing, nothing reserved."""
        taken: Set[IPAddress] = self.store.taken()
        return next((a for a, _ in self.range_set.candidates(None) if a not in taken), None)

    def _range(self, addr: IPAddress) -> Range:
        r = self.range_set.range_for(addr)
        if r is None:
            raise AllocationError(f"{addr} not in range set {self.range_set}")
        return r

    def _lease(self, addr: IPAddress, fresh: bool) -> Lease:
        r = self._range(addr)
        return Lease(ip_interface(f"{addr}/{r.subnet.prefixlen}"), r.gateway, fresh)
