"""net.ip over the synchronous rtnetlink socket (net.nlsock), checked through iproute2."""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable

import pytest
from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWLINK

from pycni.net import addresses, links, netns, newlink, routes
from tests.helpers.netns import Netns


def test_a_veth_is_born_with_its_peer_in_the_pod_on_the_bridge_and_up(
    make_netns: Callable[..., Netns],
) -> None:
    node, pod = make_netns("pyn"), make_netns("pyp")
    with netns.rtnl(node.path) as host, netns.rtnl(pod.path) as inside:
        br = newlink.ensure_bridge(host, "br-sync", mtu=1400)
        host_end, pod_end = newlink.setup_veth(
            host, inside, "eth7", mtu=1400, mac="0a:58:0a:00:00:07", master=br.index
        )
    links = node.links()
    assert links["br-sync"]["mtu"] == 1400 and "UP" in links["br-sync"]["flags"]
    assert links[host_end.name]["master"] == "br-sync" and "UP" in links[host_end.name]["flags"]
    assert host_end.master == br.index and host_end.up and host_end.mtu == 1400
    pod_links = pod.links()
    assert pod_links["eth7"]["address"] == "0a:58:0a:00:00:07" == pod_end.mac
    assert pod_links["eth7"]["mtu"] == 1400 and "UP" not in pod_links["eth7"]["flags"]
    assert pod_end.peer_index == host_end.index and pod_end.kind == "veth"


def test_a_taken_pod_name_is_link_exists_and_leaves_nothing(make_netns: Callable[..., Netns]) -> None:
    node, pod = make_netns("pyn"), make_netns("pyp")
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    before = node.link_names()
    with netns.rtnl(node.path) as host, netns.rtnl(pod.path) as inside, pytest.raises(links.LinkExists):
        newlink.setup_veth(host, inside, "eth0")
    assert node.link_names() == before


def test_lookups_of_missing_links_and_kernel_errors(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns()
    with netns.rtnl(ns.path) as r:
        assert links.find_link(r, "nope0") is None
        assert links.find_link(r, "a-name-longer-than-ifnamsiz") is None  # asked as an altname
        assert links.link_by_index(r, 0) is None
        assert links.delete_link(r, "nope0") is False
        lo = links.get_link(r, "lo")
        assert lo.index == 1 and lo.up
        with pytest.raises(NetlinkError) as err:  # a request the kernel refuses keeps its errno
            r.nl.change(links.link_msg(1 << 30, [("IFLA_MTU", 1400)]), RTM_NEWLINK)
        assert err.value.code == errno.ENODEV
        assert links.get_link(r, "lo") == lo  # the socket is still usable


def test_a_dump_spanning_many_datagrams(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns()
    with netns.rtnl(ns.path) as r:
        for n in range(60):
            newlink.ensure_bridge(r, f"brd{n}")
        names = {link.name for link in links.list_links(r)}
    assert names == {"lo", *(f"brd{n}" for n in range(60))} == ns.link_names()


def test_addresses_and_routes_with_their_attributes(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns()
    ns.run("ip", "link", "add", "rt0", "type", "veth", "peer", "name", "rt1")
    with netns.rtnl(ns.path) as r:
        link = links.get_link(r, "rt0")
        addresses.add_address(r, link.index, ipaddress.ip_interface("10.61.0.2/24"))
        addresses.add_address(r, link.index, ipaddress.ip_interface("10.61.0.2/24"))  # EEXIST is fine
        addresses.add_address(r, link.index, ipaddress.ip_interface("fd00:61::2/64"), nodad=True)
        links.set_up(r, link)
        gw = ipaddress.ip_address("10.61.0.1")
        routes.add_route(r, ipaddress.ip_network("0.0.0.0/0"), gw, link.index)
        routes.add_route(
            r, ipaddress.ip_network("10.62.0.0/16"), gw, link.index, table=300, priority=7, mtu=1300
        )
        assert set(addresses.link_addresses(r, link.index)) >= {
            ipaddress.ip_interface("10.61.0.2/24"),
            ipaddress.ip_interface("fd00:61::2/64"),
        }
        assert (ipaddress.ip_network("0.0.0.0/0"), gw) in routes.link_routes(
            r, addresses.family_of(4), link.index
        )
        assert routes.default_route_ifindexes(r) == {link.index}
        looked_up = routes.route_to(r, ipaddress.ip_address("10.62.1.1"))
        assert looked_up is not None and looked_up.oif == link.index
    assert ns.addrs("rt0") >= {"fd00:61::2/64"}
    (table300,) = ns.ip("route", "show", "table", "300")
    assert table300["dst"] == "10.62.0.0/16" and table300["gateway"] == "10.61.0.1"
    assert table300["metric"] == 7 and table300["metrics"] == [{"mtu": 1300}]
    v6 = next(
        a for a in ns.ip("-6", "addr", "show", "dev", "rt0")[0]["addr_info"] if a["local"] == "fd00:61::2"
    )
    assert v6.get("nodad")
    with netns.rtnl(ns.path) as r:  # last: the gateway routes go with the address
        index = links.get_link(r, "rt0").index
        addresses.delete_address(r, index, ipaddress.ip_interface("10.61.0.2/24"))
        addresses.delete_address(r, index, ipaddress.ip_interface("10.61.0.2/24"))  # already gone: fine
        assert ipaddress.ip_interface("10.61.0.2/24") not in addresses.link_addresses(r, index)


@pytest.mark.parametrize("flagged", ["a part", "DONE alone"])
def test_a_dump_flagged_interrupted_on_any_message_is_retried_not_trusted(
    flagged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel checks a dump's consistency as it writes each batch, NLMSG_DONE included."""
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted

    from pycni.net.nlsock import NLM_F_DUMP_INTR, NLMSG_HEADER, NetlinkSocket

    nl = NetlinkSocket()
    try:
        seq = nl.seq + 1
        part_flags, done_flags = (NLM_F_DUMP_INTR, 0) if flagged == "a part" else (0, NLM_F_DUMP_INTR)
        part = NLMSG_HEADER.pack(NLMSG_HEADER.size + 4, RTM_NEWLINK, 0x2 | part_flags, seq, 0) + bytes(4)
        done = NLMSG_HEADER.pack(NLMSG_HEADER.size + 4, 3, 0x2 | done_flags, seq, 0) + bytes(4)
        real = nl.sock

        class Unsent:
            send = staticmethod(len)
            close = real.close

        monkeypatch.setattr(nl, "sock", Unsent())
        answers = iter([part + done])
        monkeypatch.setattr(nl, "_recv", lambda: next(answers))
        with pytest.raises(NetlinkDumpInterrupted):
            nl.dump_raw(links.link_msg(), 18)  # RTM_GETLINK
    finally:
        nl.close()


def test_kernel_errors_read_directly_are_what_pyroute2_decodes(
    make_netns: Callable[..., Netns], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Errno and the kernel's extended-ack message, for refusals with and without one."""
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl

    from pycni.net import nlsock

    seen: list[tuple[bytes, OSError]] = []
    read = nlsock.kernel_error
    UNKNOWN = ("IFLA_INFO_KIND", "nokind")  # noqa: N806  EOPNOTSUPP, with the kernel's message

    def spy(raw: bytes, code: int) -> OSError:
        seen.append((raw, read(raw, code)))
        return seen[-1][1]

    monkeypatch.setattr(nlsock, "kernel_error", spy)
    ns = make_netns()
    with netns.rtnl(ns.path) as r:
        assert links.find_link(r, "nope0") is None  # ENODEV, no message
        create = NLM_F_CREATE | NLM_F_EXCL
        veth = {"attrs": [("IFLA_INFO_KIND", "veth")]}
        for request, flags in (
            (links.link_msg(1 << 30, [("IFLA_MTU", 1400)]), 0),  # ENODEV
            (links.link_msg(0, [("IFLA_IFNAME", "x0"), ("IFLA_LINKINFO", {"attrs": [UNKNOWN]})]), create),
            (links.link_msg(0, [("IFLA_IFNAME", "a/b"), ("IFLA_LINKINFO", veth)]), create),  # EINVAL
        ):
            with pytest.raises(NetlinkError):
                r.nl.change(request, RTM_NEWLINK, flags)
    assert len(seen) == 4 and any(err.args[1] for _, err in seen), "one refusal with a message at least"
    for raw, ours in seen:
        theirs = next(iter(MarshalRtnl().parse(raw)))["header"]["error"]
        assert (type(ours), ours.args) == (type(theirs), theirs.args)
