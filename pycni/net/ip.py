"""Typed netlink helpers over pyroute2: links, veths, bridges, addresses, routes.

Named by idempotence: `ensure_*` creates or verifies, `setup_*` creates, `delete_*` treats
"missing" as done. They take an open IPRoute (one per namespace per request, see
`pycni.net.netns.rtnl`) and return frozen dataclasses, so untyped netlink messages stop here.
Bridge ports, FDB entries and VXLAN devices have their own modules beside this one.

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
from typing import TYPE_CHECKING, Any

from pyroute2.netlink.exceptions import NetlinkDumpInterrupted

from pycni.cni.errors import AlreadyExists, InternalError, NotFound, netlink_errno
from pycni.cni.ipaddr import IPAddress, IPInterface, IPNetwork
from pycni.net import netns

if TYPE_CHECKING:
    from pyroute2 import IPRoute

IFF_UP = 0x1  # linux/if.h: administratively up
IFF_PROMISC = 0x100  # receive all frames
IFF_LOWER_UP = 0x10000  # carrier
IFA_F_NODAD = 0x02  # linux/if_addr.h: skip duplicate address detection
RT_TABLE_MAIN = 254  # linux/rtnetlink.h: the table `ip route` shows
RT_SCOPE_UNIVERSE = 0  # a global address
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


def _get(ipr: IPRoute, **key: Any) -> Link | None:
    """One RTM_GETLINK looked up by the kernel (a dump would cost more with every pod)."""
    try:
        msgs = list(ipr.link("get", **key))
    except Exception as exc:
        if netlink_errno(exc) == errno.ENODEV:
            return None
        raise
    return to_link(msgs[0]) if msgs else None


def find_link(ipr: IPRoute, name: str) -> Link | None:
    return _get(ipr, ifname=name)


def get_link(ipr: IPRoute, name: str) -> Link:
    link = find_link(ipr, name)
    if link is None:
        raise LinkNotFound(f"link {name!r} not found")
    return link


def link_by_index(ipr: IPRoute, index: int) -> Link | None:
    return _get(ipr, index=index)


def links(ipr: IPRoute) -> list[Link]:
    return [to_link(m) for m in dump(ipr.get_links)]


def set_link(ipr: IPRoute, link: Link, **attrs: Any) -> None:
    ipr.link("set", index=link.index, **attrs)


def set_up(ipr: IPRoute, link: Link) -> None:
    ipr.link("set", index=link.index, state="up")


def set_promisc(ipr: IPRoute, link: Link) -> None:
    """Promiscuous mode on (`ip link set promisc on`); nothing to do when it already is."""
    if not link.promisc:
        ipr.link("set", index=link.index, flags=IFF_PROMISC, mask=IFF_PROMISC)


def ensure_bridge(ipr: IPRoute, name: str, mtu: int | None = None, vlan_filtering: bool = False) -> Link:
    """The bridge `name`, created (with `mtu`) if missing, verified to be a bridge, and up.

    MTU and VLAN filtering apply only at creation, as in the reference: an existing bridge
    belongs to whoever made it. EEXIST from a concurrent creator is fine.
    """
    link = find_link(ipr, name)
    if link is None:
        attrs: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            attrs["mtu"] = mtu
        if vlan_filtering:
            attrs["br_vlan_filtering"] = 1
        try:
            ipr.link("add", **attrs)
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
    host: IPRoute, pod: IPRoute, ifname: str, mtu: int | None = None, mac: str | None = None
) -> tuple[Link, Link]:
    """A veth pair created from inside the pod with its peer born in the host namespace.

    Creating it this way never leaves a transiently named device in either namespace.
    Returns (host side, pod side); the host side is down, the pod side is down.
    """
    with netns.own_fd() as host_fd:
        for _ in range(10):
            host_name = random_veth_name()
            attrs: dict[str, Any] = {
                "ifname": ifname,
                "kind": "veth",
                "peer": {"ifname": host_name, "net_ns_fd": host_fd},
            }
            if mtu:
                attrs["mtu"] = mtu
                attrs["peer"]["mtu"] = mtu
            if mac:
                attrs["address"] = mac
            try:
                pod.link("add", **attrs)
            except Exception as exc:
                if netlink_errno(exc) == errno.EEXIST:
                    if find_link(pod, ifname) is not None:
                        raise LinkExists(f"container veth name provided ({ifname}) already exists") from None
                    continue  # the random host name was taken; pick another
                raise InternalError(f"failed to create veth pair for {ifname}: {exc}") from exc
            return get_link(host, host_name), get_link(pod, ifname)
    raise InternalError("failed to find a free host veth name after 10 attempts")


def delete_link(ipr: IPRoute, link: str | Link) -> bool:
    """Delete a link if present; False when it was already gone.

    By name, or given a `Link`, by index: then a link renamed meanwhile is still the one deleted,
    and a new link that took the name is left alone.
    """
    key: dict[str, Any] = {"ifname": link} if isinstance(link, str) else {"index": link.index}
    try:
        ipr.link("del", **key)
    except Exception as exc:
        if netlink_errno(exc) in (errno.ENODEV, errno.ENOENT):
            return False
        raise
    return True


def addresses(ipr: IPRoute, index: int, family: int = 0) -> list[IPInterface]:
    filters = {"index": index, "family": family} if family else {"index": index}
    return [
        ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        for msg in dump(lambda: ipr.get_addr(**filters))
    ]


@dataclass(frozen=True)
class LinkAddress:
    """An address and the index of the link holding it."""

    index: int
    address: IPAddress


def global_addresses(ipr: IPRoute, index: int | None = None) -> list[LinkAddress]:
    """Every global-scope address (of link `index`, or of every link), in the kernel's order."""
    filters = {} if index is None else {"index": index}
    return [
        LinkAddress(msg["index"], ipaddress.ip_address(msg.get("IFA_ADDRESS")))
        for msg in dump(lambda: ipr.get_addr(**filters))
        if msg["scope"] == RT_SCOPE_UNIVERSE
    ]


def add_address(ipr: IPRoute, index: int, addr: IPInterface, nodad: bool = False) -> None:
    attrs: dict[str, Any] = {"index": index, "address": str(addr.ip), "prefixlen": addr.network.prefixlen}
    if addr.version == 4:
        attrs["broadcast"] = str(addr.network.broadcast_address) if addr.network.prefixlen < 31 else None
        attrs = {k: v for k, v in attrs.items() if v is not None}
    elif nodad:
        attrs["flags"] = IFA_F_NODAD
    try:
        ipr.addr("add", **attrs)
    except Exception as exc:
        if netlink_errno(exc) != errno.EEXIST:
            raise InternalError(f"failed to add address {addr} to link {index}: {exc}") from exc


def delete_address(ipr: IPRoute, index: int, addr: IPInterface) -> None:
    try:
        ipr.addr("del", index=index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
    except Exception as exc:
        if netlink_errno(exc) not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
            raise


def add_route(ipr: IPRoute, dst: IPNetwork, gw: IPAddress | None, index: int, **extra: Any) -> None:
    attrs: dict[str, Any] = {
        "dst": str(dst),
        "oif": index,
        **{k: v for k, v in extra.items() if v is not None},
    }
    if gw is not None:
        attrs["gateway"] = str(gw)
    try:
        ipr.route("add", **attrs)
    except Exception as exc:
        if netlink_errno(exc) != errno.EEXIST:
            raise InternalError(f"failed to add route {dst} via {gw or 'link'}: {exc}") from exc


def routes(ipr: IPRoute, family: int, index: int | None = None) -> list[tuple[IPNetwork, IPAddress | None]]:
    """Main-table routes as (dst, gateway)."""
    found: list[tuple[IPNetwork, IPAddress | None]] = []
    for msg in dump(lambda: ipr.get_routes(family=family, table=RT_TABLE_MAIN)):
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


def default_routes(ipr: IPRoute, family: int) -> list[DefaultRoute]:
    """The main table's default routes of `family`, in the kernel's order."""
    return [
        DefaultRoute(msg.get("RTA_OIF") or 0, tuple(hop["oif"] for hop in msg.get("RTA_MULTIPATH") or ()))
        for msg in dump(lambda: ipr.get_routes(family=family, table=RT_TABLE_MAIN))
        if msg["dst_len"] == 0
    ]


def default_route_ifindexes(ipr: IPRoute) -> set[int]:
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


def route_to(ipr: IPRoute, dst: IPAddress) -> RouteLookup | None:
    """How the kernel would send to `dst`; None when it would not (no route, unreachable)."""
    try:
        msgs = list(ipr.route("get", dst=str(dst)))
    except Exception as exc:
        if netlink_errno(exc) is None:
            raise
        return None
    oif = msgs[0].get("RTA_OIF") if msgs else None
    if not oif:
        return None
    src = msgs[0].get("RTA_PREFSRC")
    return RouteLookup(oif, ipaddress.ip_address(src) if src else None)


def move_link(ipr: IPRoute, link: Link, netns_fd: int) -> None:
    """Move `link` into the netns held by `netns_fd`; its index may change there, its name does not."""
    try:
        ipr.link("set", index=link.index, net_ns_fd=netns_fd)
    except Exception as exc:
        if netlink_errno(exc) == errno.EEXIST:
            msg = f"cannot move {link.name!r}: its name or an altname exists in the target netns"
            raise LinkExists(msg) from exc
        raise InternalError(f"failed to move link {link.name!r} to another netns: {exc}") from exc


def rename_link(ipr: IPRoute, link: Link, name: str) -> None:
    """Rename `link` (the kernel needs it down); EEXIST becomes `LinkExists`."""
    try:
        ipr.link("set", index=link.index, ifname=name)
    except Exception as exc:
        if netlink_errno(exc) == errno.EEXIST:
            raise LinkExists(f"cannot rename {link.name!r} to {name!r}: the name is taken") from exc
        raise InternalError(f"failed to rename link {link.name!r} to {name!r}: {exc}") from exc


def set_down(ipr: IPRoute, link: Link) -> None:
    ipr.link("set", index=link.index, state="down")


def set_alias(ipr: IPRoute, link: Link, alias: str) -> None:
    """Set IFLA_IFALIAS; an empty string removes it."""
    ipr.link("set", index=link.index, ifalias=alias)


def add_altname(ipr: IPRoute, link: Link, altname: str) -> None:
    """Add an alternative name; one already on this link is fine."""
    try:
        ipr.link("property_add", index=link.index, altname=altname)
    except Exception as exc:
        if netlink_errno(exc) != errno.EEXIST:
            raise InternalError(f"failed to add altname {altname!r} to {link.name!r}: {exc}") from exc
        owner = find_link(ipr, altname)
        if owner is None or owner.index != link.index:
            raise LinkExists(f"cannot add altname {altname!r} to {link.name!r}: the name is taken") from exc


def del_altname(ipr: IPRoute, link: Link, altname: str) -> None:
    """Remove an alternative name; one already gone is fine."""
    try:
        ipr.link("property_del", index=link.index, altname=altname)
    except Exception as exc:
        if netlink_errno(exc) not in (errno.ENOENT, errno.ENODEV):
            raise InternalError(f"failed to remove altname {altname!r} from {link.name!r}: {exc}") from exc
