"""`links.parse_link` reads the kernel's link messages exactly as pyroute2's full decoding does.

The lookups on every pod's path decode link answers with `parse_link` (a few struct reads)
instead of pyroute2's decoder; `to_link` over pyroute2's decoding stays the reference. Every
kind of link this kernel can make, with the fields that vary set (alias, altname, master,
peer, promiscuous, down and up), is read both ways from the same bytes and compared.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_GETLINK

from pycni.net import links, netns
from tests.helpers.netns import Netns


def _make_links(ns: Netns) -> None:
    ns.run("ip", "link", "add", "brd0", "type", "bridge")
    ns.run("ip", "link", "set", "brd0", "up", "promisc", "on", "mtu", "1400")
    ns.run("ip", "link", "add", "vd0", "type", "veth", "peer", "name", "vd1")
    ns.run("ip", "link", "set", "vd0", "master", "brd0", "alias", "a pod's end, ünïcode")
    ns.run("ip", "link", "set", "vd0", "address", "0A:58:0A:00:00:09", "up")
    ns.run("ip", "link", "add", "vxd0", "type", "vxlan", "id", "42", "dstport", "4789")
    ns.run("ip", "link", "add", "mvd0", "link", "vd1", "type", "macvlan", "mode", "bridge")
    # a kernel without altnames still has every other case
    ns.run("ip", "link", "property", "add", "dev", "vd1", "altname", "a-long-alt-name-0", check=False)


def test_parse_link_equals_pyroute2s_decoding_for_every_kind(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns("pld")
    _make_links(ns)
    with netns.rtnl(ns.path) as ipr:
        msg = links.link_msg(attrs=[("IFLA_EXT_MASK", links.RTEXT_FILTER_SKIP_STATS)])
        raws = ipr.nl.dump_raw(msg, RTM_GETLINK)
        assert len(raws) == len(ns.link_names()) >= 6
        for raw in raws:
            decoded = links.to_link(ipr.nl._decoded(raw))
            assert links.parse_link(raw) == decoded
        by_name = {link.name: link for link in links.list_links(ipr)}
        assert by_name["vd0"].alias == "a pod's end, ünïcode" and by_name["vd0"].mac == "0a:58:0a:00:00:09"
        assert by_name["vd0"].master == by_name["brd0"].index and by_name["vd0"].kind == "veth"
        assert by_name["brd0"].promisc and by_name["brd0"].mtu == 1400 and by_name["brd0"].up
        assert by_name["mvd0"].peer_index == by_name["vd1"].index and by_name["vxd0"].kind == "vxlan"
        assert links.get_link(ipr, "vd1") == by_name["vd1"]  # a get answers as a dump does
        assert links.link_by_index(ipr, by_name["brd0"].index) == by_name["brd0"]


def test_a_missing_link_is_the_kernels_enodev(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns("pld")
    with netns.rtnl(ns.path) as ipr:
        assert links.find_link(ipr, "nosuchlink0") is None
        with pytest.raises(NetlinkError) as err:
            ipr.nl.get_raw(links.link_msg(attrs=[("IFLA_IFNAME", "nosuchlink0")]), RTM_GETLINK)
        assert err.value.code == errno.ENODEV


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (dict(name="eth0", lookup=True), (0, [("IFLA_EXT_MASK", 8), ("IFLA_IFNAME", "eth0")], 0, 0)),
        (dict(index=7, lookup=True), (7, [("IFLA_EXT_MASK", 8)], 0, 0)),
        (
            dict(name="a-name-of-sixteen+", lookup=True),
            (0, [("IFLA_EXT_MASK", 8), ("IFLA_ALT_IFNAME", "a-name-of-sixteen+")], 0, 0),
        ),
        (dict(name="veth1234"), (0, [("IFLA_IFNAME", "veth1234")], 0, 0)),
        (dict(index=12), (12, [], 0, 0)),
        (dict(index=12, flags=links.IFF_UP, change=links.IFF_UP), (12, [], links.IFF_UP, links.IFF_UP)),
    ],
)
def test_link_request_packs_what_pyroute2_encodes(shape: dict[str, Any], expected: tuple[Any, ...]) -> None:
    index, attrs, flags, change = expected
    msg = links.link_msg(index, attrs, flags=flags, change=change)
    msg.encode()
    assert links.link_request(**shape) == bytes(msg.data[16:])  # the body, after the nlmsghdr
