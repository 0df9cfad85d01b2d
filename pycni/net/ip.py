"""Typed netlink helpers: links, veths, bridges, addresses, routes.

Named by idempotence: `ensure_*` creates or verifies, `setup_*` creates, `delete_*` treats
"missing" as done. They take the `Rtnl` of a namespace (one per namespace per request, see
`pycni.net.netns.rtnl`) and return frozen dataclasses, so untyped netlink messages stop here.
Requests go over its synchronous socket (`pycni.net.nlsock`), built from pyroute2's message
classes, and each asks for as little as it needs: one link by name or index rather than a
dump, a veth created with its peer already named and placed in the pod and its host end on
the bridge and up. Bridge ports, FDB entries and VXLAN devices have their own modules.

pyroute2 is imported at module level: only ops modules import this one, after the runner has
answered VERSION and validated the config, and they open netlink sockets anyway.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted
from pyroute2.netlink.rtnl import (
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
)
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from pycni.cni.errors import AlreadyExists, InternalError, NotFound, netlink_errno
from pycni.cni.ipaddr import IPAddress, IPInterface, IPNetwork
from pycni.net.nlsock import Rtnl

IFF_UP = 0x1  # linux/if.h: administratively up
IFF_PROMISC = 0x100  # receive all frames
IFF_LOWER_UP = 0x10000  # carrier
IFA_F_NODAD = 0x02  # linux/if_addr.h: skip duplicate address detection
RT_TABLE_MAIN = 254  # linux/rtnetlink.h: the table `ip route` shows
RT_TABLE_COMPAT = 252  # rtmsg's 8-bit table field when the table is in RTA_TABLE
RT_SCOPE_UNIVERSE = 0  # a global address
RTPROT_STATIC = 4  # routes we add, as `ip route add` marks them
RTN_UNICAST = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3  # links without their counters: smaller, cheaper answers
IFNAMSIZ = 16  # a longer name can only be an altname
FAMILIES = (socket.AF_INET, socket.AF_INET6)
DUMP_RETRIES = 5


def family_of(version: int) -> int:
    """The address family (AF_INET / AF_INET6) of IP version 4 or 6."""
    return socket.AF_INET if version == 4 else socket.AF_INET6


class LinkNotFound(NotFound):
    """No link of that name or index in the namespace."""


class LinkExists(AlreadyExists):
    """The name (or an altname) is taken in the namespace."""


@dataclass(frozen=True)
class Link:
    """A link as the kernel reports it; `master` and `peer_index` are 0 when it has none."""

    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    master: int
    up: bool
    promisc: bool
    carrier: bool
    alias: str
    peer_index: int
    altnames: tuple[str, ...]


def to_link(msg: Any) -> Link:
    """A link message of a dump or get, typed (for the kind-specific modules beside this one)."""
    info = msg.get("IFLA_LINKINFO")
    altnames = msg.get("IFLA_PROP_LIST")
    return Link(
        index=msg["index"],
        name=msg.get("IFLA_IFNAME"),
        mac=(msg.get("IFLA_ADDRESS") or "").lower(),
        mtu=msg.get("IFLA_MTU") or 0,
        kind=(info.get("IFLA_INFO_KIND") if info else None) or "",
        master=msg.get("IFLA_MASTER") or 0,
        up=bool(msg["flags"] & IFF_UP),
        promisc=bool(msg["flags"] & IFF_PROMISC),
        carrier=bool(msg["flags"] & IFF_LOWER_UP),
        alias=msg.get("IFLA_IFALIAS") or "",
        peer_index=msg.get("IFLA_LINK") or 0,
        altnames=tuple(altnames.get_attrs("IFLA_ALT_IFNAME")) if altnames else (),
    )


def dump(fetch: Callable[[], Iterable[Any]]) -> list[Any]:
    """The messages of a dump, retried when the kernel reports a change interrupted it.

    An interrupted dump may miss or repeat entries; the last attempt's interruption is raised.
    """
    for _ in range(DUMP_RETRIES - 1):
        try:
            return list(fetch())
        except NetlinkDumpInterrupted:
            continue
    return list(fetch())


def _link_msg(index: int = 0, attrs: Iterable[tuple[str, Any]] = (), flags: int = 0, change: int = 0) -> Any:
    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = flags
    msg["change"] = change
    msg["attrs"] = list(attrs)
    return msg


def _name_attr(name: str) -> tuple[str, str]:
    """How a link is named in a request: IFLA_IFNAME, or IFLA_ALT_IFNAME past IFNAMSIZ."""
    return ("IFLA_ALT_IFNAME" if len(name) >= IFNAMSIZ else "IFLA_IFNAME", name)


def _get(ipr: Rtnl, index: int = 0, name: str | None = None) -> Link | None:
    """One RTM_GETLINK looked up by the kernel (a dump would cost more with every pod)."""
    attrs: list[tuple[str, Any]] = [("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]
    if name is not None:
        attrs.append(_name_attr(name))
    try:
        return to_link(ipr.nl.get(_link_msg(index, attrs), RTM_GETLINK))
    except Exception as exc:
        if netlink_errno(exc) == errno.ENODEV:
            return None
        raise


def find_link(ipr: Rtnl, name: str) -> Link | None:
    return _get(ipr, name=name)


def get_link(ipr: Rtnl, name: str) -> Link:
    link = find_link(ipr, name)
    if link is None:
        raise LinkNotFound(f"link {name!r} not found")
    return link


def link_by_index(ipr: Rtnl, index: int) -> Link | None:
    return _get(ipr, index=index) if index > 0 else None


def links(ipr: Rtnl) -> list[Link]:
    request = lambda: ipr.nl.dump(_link_msg(attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]), RTM_GETLINK)  # noqa: E731
    return [to_link(m) for m in dump(request)]


#: `set_link` keywords sent over the synchronous socket, as the attributes they set.
_LINK_ATTRS = {
    "master": "IFLA_MASTER",
    "mtu": "IFLA_MTU",
    "address": "IFLA_ADDRESS",
    "ifname": "IFLA_IFNAME",
    "ifalias": "IFLA_IFALIAS",
    "net_ns_fd": "IFLA_NET_NS_FD",
}


def set_link(ipr: Rtnl, link: Link, **attrs: Any) -> None:
    """Change attributes of `link` (pyroute2's keywords); the common ones in one synchronous request."""
    if attrs.keys() <= _LINK_ATTRS.keys():
        ipr.nl.change(_link_msg(link.index, [(_LINK_ATTRS[k], v) for k, v in attrs.items()]), RTM_NEWLINK)
    else:
        ipr.pyroute2().link("set", index=link.index, **attrs)


def _set_flags(ipr: Rtnl, link: Link, flags: int, mask: int) -> None:
    ipr.nl.change(_link_msg(link.index, flags=flags, change=mask), RTM_NEWLINK)


def set_up(ipr: Rtnl, link: Link) -> None:
    _set_flags(ipr, link, IFF_UP, IFF_UP)


def set_down(ipr: Rtnl, link: Link) -> None:
    _set_flags(ipr, link, 0, IFF_UP)


def set_promisc(ipr: Rtnl, link: Link) -> None:
    """Promiscuous mode on (`ip link set promisc on`); nothing to do when it already is."""
    if not link.promisc:
        _set_flags(ipr, link, IFF_PROMISC, IFF_PROMISC)


def _create_link(
    ipr: Rtnl, kind: str, attrs: list[tuple[str, Any]], data: list[tuple[str, Any]], up: bool
) -> None:
    """RTM_NEWLINK with NLM_F_EXCL: a new link of `kind`, optionally up from its first moment."""
    info: list[tuple[str, Any]] = [("IFLA_INFO_KIND", kind)]
    if data:
        info.append(("IFLA_INFO_DATA", {"attrs": data}))
    msg = _link_msg(0, [*attrs, ("IFLA_LINKINFO", {"attrs": info})], IFF_UP if up else 0, IFF_UP if up else 0)
    ipr.nl.change(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)


def ensure_bridge(ipr: Rtnl, name: str, mtu: int | None = None, vlan_filtering: bool = False) -> Link:
    """The bridge `name`, created (with `mtu`) if missing, verified to be a bridge, and up.

    MTU and VLAN filtering apply only at creation, as in the reference: an existing bridge
    belongs to whoever made it. EEXIST from a concurrent creator is fine.
    """
    link = find_link(ipr, name)
    if link is None:
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        data = [("IFLA_BR_VLAN_FILTERING", 1)] if vlan_filtering else []
        try:
            _create_link(ipr, "bridge", attrs, data, up=True)
        except Exception as exc:
            if netlink_errno(exc) != errno.EEXIST:
                raise InternalError(f"could not create bridge {name!r}: {exc}") from exc
        link = get_link(ipr, name)
    if link.kind != "bridge":
        raise InternalError(
            f"{name!r} already exists but is not a bridge (it is {link.kind or 'a plain link'})"
        )
    if not link.up:
        set_up(ipr, link)
        link = get_link(ipr, name)
    return link


def random_veth_name() -> str:
    """`veth` + 8 hex digits, as the reference: NetworkManager leaves veth* alone."""
    return f"veth{secrets.token_hex(4)}"


def setup_veth(
    host: Rtnl,
    pod: Rtnl,
    ifname: str,
    mtu: int | None = None,
    mac: str | None = None,
    master: int | None = None,
) -> tuple[Link, Link]:
    """A veth pair made by one request in the host namespace, its peer born in the pod.

    The pod end is created with its final name, MTU and MAC directly in the pod's namespace,
    so no transiently named device ever shows in either namespace. With `master`, the host end
    is created on that bridge and up; without, down. The pod end is down.
    Returns (host side, pod side).
    """
    for _ in range(10):
        host_name = random_veth_name()
        mtu_attr = [("IFLA_MTU", mtu)] if mtu else []
        peer = [("IFLA_IFNAME", ifname), ("IFLA_NET_NS_FD", pod.netns_fd), *mtu_attr]
        if mac:
            peer.append(("IFLA_ADDRESS", mac))
        attrs = [("IFLA_IFNAME", host_name), *mtu_attr]
        if master:
            attrs.append(("IFLA_MASTER", master))
        try:
            _create_link(host, "veth", attrs, [("VETH_INFO_PEER", {"attrs": peer})], up=bool(master))
        except Exception as exc:
            if netlink_errno(exc) == errno.EEXIST:
                if find_link(pod, ifname) is not None:
                    raise LinkExists(f"container veth name provided ({ifname}) already exists") from None
                continue  # the random host name was taken; pick another
            raise InternalError(f"failed to create veth pair for {ifname}: {exc}") from exc
        return get_link(host, host_name), get_link(pod, ifname)
    raise InternalError("failed to find a free host veth name after 10 attempts")


def delete_link(ipr: Rtnl, link: str | Link) -> bool:
    """Delete a link if present; False when it was already gone.

    By name, or given a `Link`, by index: then a link renamed meanwhile is still the one deleted,
    and a new link that took the name is left alone.
    """
    msg = _link_msg(attrs=[_name_attr(link)]) if isinstance(link, str) else _link_msg(link.index)
    try:
        ipr.nl.change(msg, RTM_DELLINK)
    except Exception as exc:
        if netlink_errno(exc) in (errno.ENODEV, errno.ENOENT):
            return False
        raise
    return True


def _addr_dump(ipr: Rtnl, index: int | None, family: int = 0) -> list[Any]:
    """Address messages (the kernel sends every link's; this one's are kept)."""
    msg = ifaddrmsg()
    msg["family"] = family
    return [m for m in dump(lambda: ipr.nl.dump(msg, RTM_GETADDR)) if index is None or m["index"] == index]


def addresses(ipr: Rtnl, index: int, family: int = 0) -> list[IPInterface]:
    return [
        ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        for msg in _addr_dump(ipr, index, family)
    ]


@dataclass(frozen=True)
class LinkAddress:
    """An address and the index of the link holding it."""

    index: int
    address: IPAddress


def global_addresses(ipr: Rtnl, index: int | None = None) -> list[LinkAddress]:
    """Every global-scope address (of link `index`, or of every link), in the kernel's order."""
    return [
        LinkAddress(msg["index"], ipaddress.ip_address(msg.get("IFA_ADDRESS")))
        for msg in _addr_dump(ipr, index)
        if msg["scope"] == RT_SCOPE_UNIVERSE
    ]


def _addr_msg(index: int, addr: IPInterface, flags: int = 0, broadcast: bool = False) -> Any:
    msg = ifaddrmsg()
    msg["family"] = family_of(addr.version)
    msg["prefixlen"] = addr.network.prefixlen
    msg["flags"] = flags
    msg["index"] = index
    attrs: list[tuple[str, Any]] = [("IFA_ADDRESS", str(addr.ip))]
    if addr.version == 4:
        attrs.append(("IFA_LOCAL", str(addr.ip)))
        if broadcast and addr.network.prefixlen < 31:
            attrs.append(("IFA_BROADCAST", str(addr.network.broadcast_address)))
    msg["attrs"] = attrs
    return msg


def add_address(ipr: Rtnl, index: int, addr: IPInterface, nodad: bool = False) -> None:
    msg = _addr_msg(index, addr, IFA_F_NODAD if nodad and addr.version == 6 else 0, broadcast=True)
    try:
        ipr.nl.change(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)
    except Exception as exc:
        if netlink_errno(exc) != errno.EEXIST:
            raise InternalError(f"failed to add address {addr} to link {index}: {exc}") from exc


def delete_address(ipr: Rtnl, index: int, addr: IPInterface) -> None:
    try:
        ipr.nl.change(_addr_msg(index, addr), RTM_DELADDR)
    except Exception as exc:
        if netlink_errno(exc) not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
            raise


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
    try:
        ipr.nl.change(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
    except Exception as exc:
        if netlink_errno(exc) != errno.EEXIST:
            raise InternalError(f"failed to add route {dst} via {gw or 'link'}: {exc}") from exc


def _main_routes(ipr: Rtnl, family: int) -> list[Any]:
    """The main table's routes of `family` (the kernel sends every table's)."""
    msg = rtmsg()
    msg["family"] = family
    return [
        m
        for m in dump(lambda: ipr.nl.dump(msg, RTM_GETROUTE))
        if (m.get("RTA_TABLE") or m["table"]) == RT_TABLE_MAIN
    ]


def routes(ipr: Rtnl, family: int, index: int | None = None) -> list[tuple[IPNetwork, IPAddress | None]]:
    """Main-table routes as (dst, gateway)."""
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
    try:
        answer = ipr.nl.get(msg, RTM_GETROUTE)
    except Exception as exc:
        if netlink_errno(exc) is None:
            raise
        return None
    oif = answer.get("RTA_OIF")
    if not oif:
        return None
    src = answer.get("RTA_PREFSRC")
    return RouteLookup(oif, ipaddress.ip_address(src) if src else None)


def move_link(ipr: Rtnl, link: Link, netns_fd: int) -> None:
    """Move `link` into the netns held by `netns_fd`; its index may change there, its name does not."""
    try:
        set_link(ipr, link, net_ns_fd=netns_fd)
    except Exception as exc:
        if netlink_errno(exc) == errno.EEXIST:
            msg = f"cannot move {link.name!r}: its name or an altname exists in the target netns"
            raise LinkExists(msg) from exc
        raise InternalError(f"failed to move link {link.name!r} to another netns: {exc}") from exc


def rename_link(ipr: Rtnl, link: Link, name: str) -> None:
    """Rename `link` (the kernel needs it down); EEXIST becomes `LinkExists`."""
    try:
        set_link(ipr, link, ifname=name)
    except Exception as exc:
        if netlink_errno(exc) == errno.EEXIST:
            raise LinkExists(f"cannot rename {link.name!r} to {name!r}: the name is taken") from exc
        raise InternalError(f"failed to rename link {link.name!r} to {name!r}: {exc}") from exc


def set_alias(ipr: Rtnl, link: Link, alias: str) -> None:
    """Set IFLA_IFALIAS; an empty string removes it."""
    set_link(ipr, link, ifalias=alias)


def add_altname(ipr: Rtnl, link: Link, altname: str) -> None:
    """Add an alternative name; one already on this link is fine."""
    try:
        ipr.pyroute2().link("property_add", index=link.index, altname=altname)
    except Exception as exc:
        if netlink_errno(exc) != errno.EEXIST:
            raise InternalError(f"failed to add altname {altname!r} to {link.name!r}: {exc}") from exc
        owner = find_link(ipr, altname)
        if owner is None or owner.index != link.index:
            raise LinkExists(f"cannot add altname {altname!r} to {link.name!r}: the name is taken") from exc


def del_altname(ipr: Rtnl, link: Link, altname: str) -> None:
    """Remove an alternative name; one already gone is fine."""
    try:
        ipr.pyroute2().link("property_del", index=link.index, altname=altname)
    except Exception as exc:
        if netlink_errno(exc) not in (errno.ENOENT, errno.ENODEV):
            raise InternalError(f"failed to remove altname {altname!r} from {link.name!r}: {exc}") from exc
