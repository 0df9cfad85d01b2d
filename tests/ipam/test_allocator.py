"""Allocation logic against the in-memory store: order, requests, idempotent retries, cost."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, ip_address, ip_network

import pytest

from pycni.cni.ipaddr import IPAddress
from pycni.ipam.host_local.allocator import AllocationError, Allocator
from pycni.ipam.host_local.plugin import allocate_all
from pycni.ipam.host_local.range_set import RangeSet, canonical_range
from pycni.ipam.host_local.store import MemoryStore, Owner

A = Owner("ctr-a", "eth0")
B = Owner("ctr-b", "eth0")


def one_set(subnet: str = "10.0.0.0/29") -> RangeSet:
    return RangeSet((canonical_range(ip_network(subnet)),))


def test_round_robin_skips_gateway_and_continues_after_last() -> None:
    store = MemoryStore()
    alloc = Allocator(one_set(), store, 0)
    first = alloc.allocate(A)
    assert str(first.address) == "10.0.0.2/29" and str(first.gateway) == "10.0.0.1" and first.fresh
    store.release(first.address.ip)
    assert str(alloc.allocate(B).address) == "10.0.0.3/29"  # not .2 again: round robin


def test_exhaustion_names_the_range_set() -> None:
    store = MemoryStore()
    alloc = Allocator(one_set(), store, 0)
    for i in range(5):
        alloc.allocate(Owner(f"c{i}", "eth0"))
    with pytest.raises(AllocationError, match=r"no IP addresses available in range set: 10.0.0.1-10.0.0.6"):
        alloc.allocate(A)


def test_retry_for_same_attachment_returns_the_held_address() -> None:
    store = MemoryStore()
    alloc = Allocator(one_set(), store, 0)
    first = alloc.allocate(A)
    again = alloc.allocate(A)
    assert again.address == first.address and not again.fresh
    assert len(store.owners) == 1
    assert (
        alloc.allocate(Owner("ctr-a", "net1")).address != first.address
    )  # another ifname is another attachment


def test_legacy_file_of_the_container_is_not_reused_by_add() -> None:
    store = MemoryStore(owners={IPv4Address("10.0.0.2"): Owner("ctr-a")})
    assert str(Allocator(one_set(), store, 0).allocate(A).address) == "10.0.0.3/29"


def test_requested_address() -> None:
    store = MemoryStore()
    alloc = Allocator(one_set(), store, 0)
    assert str(alloc.allocate(A, IPv4Address("10.0.0.5")).address) == "10.0.0.5/29"
    assert store.last_reserved(0) == IPv4Address("10.0.0.5")
    with pytest.raises(AllocationError, match=re.escape("requested IP address 10.0.0.5 is not available")):
        alloc.allocate(B, IPv4Address("10.0.0.5"))
    with pytest.raises(AllocationError, match=re.escape("requested ip 10.0.0.1 is subnet's gateway")):
        alloc.allocate(B, IPv4Address("10.0.0.1"))


def test_retry_asking_for_another_address_is_refused() -> None:
    store = MemoryStore()
    alloc = Allocator(one_set(), store, 0)
    alloc.allocate(A, IPv4Address("10.0.0.5"))
    assert alloc.allocate(A, IPv4Address("10.0.0.5")).fresh is False
    with pytest.raises(AllocationError, match=re.escape("10.0.0.5 has been allocated to ctr-a/eth0")):
        alloc.allocate(A, IPv4Address("10.0.0.6"))


def test_nearly_full_set_lists_the_store_once_instead_of_probing_everything() -> None:
    rs = one_set("10.0.0.0/16")
    taken: dict[IPAddress, Owner] = {
        IPv4Address(int(IPv4Address("10.0.0.2")) + i): Owner(f"c{i}", "eth0") for i in range(50_000)
    }
    store = MemoryStore(owners=dict(taken))
    lease = Allocator(rs, store, 0, probe_limit=32).allocate(A)
    assert lease.address.ip not in taken
    assert store.taken_calls == 1 and store.reserve_calls == 33


def test_free_set_costs_one_reserve() -> None:
    store = MemoryStore(last={0: IPv4Address("10.0.3.7")})
    store.owners = {IPv4Address("10.0.0.2"): B}
    Allocator(one_set("10.0.0.0/16"), store, 0).allocate(A)
    assert store.reserve_calls == 1 and store.taken_calls == 0


def test_first_free_reserves_nothing() -> None:
    store = MemoryStore()
    alloc = Allocator(one_set(), store, 0)
    assert alloc.first_free() == IPv4Address("10.0.0.2")
    for i in range(5):
        alloc.allocate(Owner(f"c{i}", "eth0"))
    assert alloc.first_free() is None


def test_allocate_all_rolls_back_only_what_it_reserved() -> None:
    v4, small = one_set("10.0.0.0/24"), one_set("10.1.0.0/30")
    store = MemoryStore(owners={ip_address("10.1.0.2"): B})
    held = Allocator(v4, store, 0).allocate(A)
    with pytest.raises(AllocationError, match="failed to allocate for range 1: no IP addresses"):
        allocate_all([v4, small], store, A, [])
    assert store.owners == {ip_address("10.1.0.2"): B, held.address.ip: A}  # the earlier lease survives


def test_allocate_all_fails_on_requested_ip_outside_every_set() -> None:
    store = MemoryStore()
    with pytest.raises(AllocationError, match=re.escape("failed to allocate all requested IPs: 192.168.0.9")):
        allocate_all([one_set()], store, A, [ip_address("192.168.0.9")])
    assert store.owners == {}
