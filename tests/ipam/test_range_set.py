"""Range arithmetic: the reference's defaults and rejections, and the round-robin order."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycni.cni.ipaddr import IPAddress
from pycni.ipam.host_local.range_set import Range, RangeSet, canonical_range


def addr(text: str | None) -> IPAddress | None:
    return None if text is None else ip_address(text)


def rng(subnet: str, start: str | None = None, end: str | None = None, gw: str | None = None) -> Range:
    return canonical_range(ip_network(subnet), addr(start), addr(end), addr(gw))


def test_defaults_v4_skip_network_and_broadcast() -> None:
    r = rng("10.0.0.0/24")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.0.0.1", "10.0.0.254", "10.0.0.1")


def test_defaults_v6_end_at_last_address() -> None:
    r = rng("fd00::/120")
    assert (str(r.start), str(r.end), str(r.gateway)) == ("fd00::1", "fd00::ff", "fd00::1")


@pytest.mark.parametrize(
    ("subnet", "kw", "message"),
    [
        ("10.0.0.0/31", {}, "too small"),
        ("fd00::/127", {}, "too small"),
        ("10.0.0.0/24", {"start": "10.0.1.5"}, "rangeStart 10.0.1.5 not in network"),
        ("10.0.0.0/24", {"end": "fd00::1"}, "rangeEnd fd00::1 not in network"),
        ("10.0.0.0/24", {"gw": "10.0.1.1"}, "gateway 10.0.1.1 not in network"),
        ("10.0.0.0/24", {"start": "10.0.0.50", "end": "10.0.0.10"}, "is after rangeEnd"),
    ],
)
def test_rejections(subnet: str, kw: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rng(subnet, **kw)


def test_set_rejects_mixed_families_and_overlaps() -> None:
    with pytest.raises(ValueError, match="mixed address families"):
        RangeSet((rng("10.0.0.0/24"), rng("fd00::/64")))
    with pytest.raises(ValueError, match="overlap"):
        RangeSet((rng("10.0.0.0/24"), rng("10.0.0.0/25")))


def test_candidates_start_after_last_reserved_and_end_with_it() -> None:
    rs = RangeSet((rng("10.0.0.0/29"),))
    order = [str(a) for a, _ in rs.candidates(IPv4Address("10.0.0.4"))]
    assert order == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


def test_candidates_ignore_a_last_reserved_outside_the_set() -> None:
    rs = RangeSet((rng("10.0.0.0/29"),))
    assert next(str(a) for a, _ in rs.candidates(IPv4Address("192.168.0.1"))) == "10.0.0.2"


def test_candidates_walk_into_the_next_range() -> None:
    rs = RangeSet((rng("10.0.0.0/30"), rng("10.0.1.0/30", gw="10.0.1.2")))
    order = [str(a) for a, _ in rs.candidates(IPv4Address("10.0.0.2"))]
    assert order == ["10.0.1.1", "10.0.0.2"]


def test_size_excludes_gateways_inside_the_range() -> None:
    assert RangeSet((rng("10.0.0.0/29"),)).size() == 5
    assert RangeSet((rng("10.0.0.0/29", start="10.0.0.3"),)).size() == 4


def test_candidates_are_lazy_on_a_huge_v6_range() -> None:
    rs = RangeSet((rng("fd00::/64"),))
    first = next(rs.candidates(IPv6Address("fd00::ffff:ffff:ffff:fffe")))
    assert str(first[0]) == "fd00::ffff:ffff:ffff:ffff"


@given(
    bounds=st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=3, unique=True),
    last=st.one_of(st.none(), st.integers(min_value=0, max_value=2**11)),
)
def test_candidates_visit_every_allocatable_address_once(bounds: list[int], last: int | None) -> None:
    ranges = tuple(rng(f"10.{b}.0.0/28", gw=f"10.{b}.0.{1 + b}") for b in sorted(bounds))
    rs = RangeSet(ranges)
    last_addr = None if last is None else IPv4Address(int(IPv4Address("10.0.0.0")) + last)
    seen = [a for a, _ in rs.candidates(last_addr)]
    assert len(seen) == len(set(seen)) == rs.size()
    assert all(a != r.gateway for r in ranges for a in seen)
    if last_addr is not None and rs.contains(last_addr) and all(last_addr != r.gateway for r in ranges):
        assert seen[-1] == last_addr
