"""Routes, typed (`ip route`): adding, listing, looking one up, and editing a pod's default route.

Requests go over the `Rtnl`'s synchronous socket; answers become `ipaddress` objects and frozen
dataclasses. Only the main table is read, as `ip route` shows it. Deleting a default route
(the NPWG `default-route` selection moving it to one attachment) is the one request built by
pyroute2 (`Rtnl.pyroute2()`): its route-deletion matching rules are not restated here.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
from pyroute2.netlink.rtnl import RTM_GETROUTE, RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from pycni.cni.ipaddr import IPAddress, IPNetwork
from pycni.net.addresses import FAMILIES, family_of
from pycni.net.links import find_link, get_link
from pycni.net.nlsock import Rtnl, dump, tolerating

RT_TABLE_MAIN = 254  # linux/rtnetlink.h: the table `ip route` shows
RT_TABLE_COMPAT = 252  # rtmsg's 8-bit table field when the table is in RTA_TABLE
RT_SCOPE_UNIVERSE = 0
RTPROT_STATIC = 4  # routes we add, as `ip route add` marks them
RTN_UNICAST = 1


def add_route(
    ipr: Rtnl,
    dst: IPNetwork,
    gw: IPAddress | None,
    index: int,
    *,
    priority: int | None = None,
    table: int | None = None,
    scope: int | None = None,
    mtu: int | None = None,
    advmss: int | None = None,
) -> None:
    """A unicast route to `dst` out of link `index` (via `gw`), in `table` (default: main)."""
    msg = rtmsg()
    msg["family"] = family_of(dst.version)
    msg["dst_len"] = dst.prefixlen
    msg["table"] = table if table is not None and table < 256 else RT_TABLE_COMPAT if table else RT_TABLE_MAIN
    msg["proto"] = RTPROT_STATIC
    msg["scope"] = scope or RT_SCOPE_UNIVERSE
    msg["type"] = RTN_UNICAST
    attrs: list[tuple[str, Any]] = [("RTA_OIF", index)]
    if dst.prefixlen:
        attrs.append(("RTA_DST", str(dst.network_address)))
    if gw is not None:
        attrs.append(("RTA_GATEWAY", str(gw)))
    if priority is not None:
        attrs.append(("RTA_PRIORITY", priority))
    if table is not None:
        attrs.append(("RTA_TABLE", table))
    metrics = [(k, v) for k, v in (("RTAX_MTU", mtu), ("RTAX_ADVMSS", advmss)) if v]
    if metrics:
        attrs.append(("RTA_METRICS", {"attrs": metrics}))
    msg["attrs"] = attrs
    with tolerating(errno.EEXIST, failure=f"failed to add route {dst} via {gw or 'link'}"):
        ipr.nl.change(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)


def _main_routes(ipr: Rtnl, family: int) -> list[Any]:
    """The main table's routes of `family` (the kernel sends every table's)."""
    msg = rtmsg()
    msg["family"] = family
    return [
        m
        for m in dump(lambda: ipr.nl.dump(msg, RTM_GETROUTE))
        if (m.get("RTA_TABLE") or m["table"]) == RT_TABLE_MAIN
    ]


def link_routes(ipr: Rtnl, family: int, index: int | None = None) -> list[tuple[IPNetwork, IPAddress | None]]:
    """Main-table routes (out of link `index`, or all) as (dst, gateway)."""
    found: list[tuple[IPNetwork, IPAddress | None]] = []
    for msg in _main_routes(ipr, family):
        if index is not None and msg.get("RTA_OIF") != index:
            continue
        dst = msg.get("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
        gw = msg.get("RTA_GATEWAY")
        found.append(
            (
                ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False),
                ipaddress.ip_address(gw) if gw else None,
            )
        )
    return found


@dataclass(frozen=True)
class DefaultRoute:
    """A main-table default route: its outgoing link, or (multipath, `oif` 0) its next hops'."""

    oif: int
    nexthop_oifs: tuple[int, ...]


def default_routes(ipr: Rtnl, family: int) -> list[DefaultRoute]:
    """The main table's default routes of `family`, in the kernel's order."""
    return [
        DefaultRoute(msg.get("RTA_OIF") or 0, tuple(hop["oif"] for hop in msg.get("RTA_MULTIPATH") or ()))
        for msg in _main_routes(ipr, family)
        if msg["dst_len"] == 0
    ]


def default_route_ifindexes(ipr: Rtnl) -> set[int]:
    """Indexes of the links carrying a default route of either family, multipath hops included."""
    return {
        oif
        for family in FAMILIES
        for route in default_routes(ipr, family)
        for oif in (route.oif, *route.nexthop_oifs)
        if oif
    }


@dataclass(frozen=True)
class RouteLookup:
    """The kernel's answer to `ip route get DST`: the outgoing link and the preferred source."""

    oif: int
    prefsrc: IPAddress | None


def route_to(ipr: Rtnl, dst: IPAddress) -> RouteLookup | None:
    """How the kernel would send to `dst`; None when it would not (no route, unreachable)."""
    msg = rtmsg()
    msg["family"] = family_of(dst.version)
    msg["dst_len"] = dst.max_prefixlen
    msg["attrs"] = [("RTA_DST", str(dst))]
    with tolerating(any_errno=True):  # any refusal means the kernel would not send there
        answer = ipr.nl.get(msg, RTM_GETROUTE)
        oif = answer.get("RTA_OIF")
        src = answer.get("RTA_PREFSRC")
        return RouteLookup(oif, ipaddress.ip_address(src) if src else None) if oif else None
    return None


def delete_default_routes(ipr: Rtnl, ifname: str, family: int) -> int:
    """Remove the main-table default routes of `family` leaving through `ifname`; how many went.

    No link of that name carries no route: nothing to remove (a network whose plugin made no
    interface, such as an IPAM plugin run as the main one)."""
    link = find_link(ipr, ifname)
    if link is None:
        return 0
    doomed = [
        msg for msg in _main_routes(ipr, family) if msg["dst_len"] == 0 and msg.get("RTA_OIF") == link.index
    ]
    for msg in doomed:
        attrs = {"dst_len": 0, "oif": link.index, "family": family, "table": RT_TABLE_MAIN}
        gateway = msg.get("RTA_GATEWAY")
        if gateway:
            attrs["gateway"] = gateway
        priority = msg.get("RTA_PRIORITY")
        if priority is not None:
            attrs["priority"] = priority
        with tolerating(errno.ESRCH, failure=f"failed to delete the default route via {ifname}"):
            ipr.pyroute2().route("del", **attrs)
    return len(doomed)


def set_default_route(ipr: Rtnl, ifname: str, gateway: IPAddress) -> None:
    """Make `gateway` on `ifname` the default route of its family (other defaults of `ifname` go)."""
    family = family_of(gateway.version)
    delete_default_routes(ipr, ifname, family)
    link = get_link(ipr, ifname)
    dst = ipaddress.ip_network("0.0.0.0/0" if family == socket.AF_INET else "::/0")
    add_route(ipr, dst, gateway, link.index)
