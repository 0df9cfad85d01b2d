"""Typed netlink helpers over pyroute2: links, veths, bridges, addresses, routes.

Named by idempotence: `ensure_*` creates or verifies, `setup_*` creates, `delete_*` treats
"missing" as done. They take an open IPRoute (one per namespace per request, see
`pycni.net.netns.rtnl`) and return frozen dataclasses, so untyped netlink messages stop here.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import AlreadyExists, InternalError, NotFound, netlink_errno

if TYPE_CHECKING:
    from pyroute2 import IPRoute

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

IFF_UP = 0x1
IFF_PROMISC = 0x100
RETRIES = 5


class LinkNotFound(NotFound):
    """No link of that name or index in the namespace."""


class LinkExists(AlreadyExists):
    """The name (or an altname) is taken in the namespace."""


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    master: int
    up: bool
    promisc: bool
    alias: str
    peer_index: int
    altnames: tuple[str, ...]


def _to_link(msg: Any) -> Link:
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
        alias=msg.get("IFLA_IFALIAS") or "",
        peer_index=msg.get("IFLA_LINK") or 0,
        altnames=tuple(altnames.get_attrs("IFLA_ALT_IFNAME")) if altnames else (),
    )


def _dump(ipr: IPRoute, **filters: Any) -> list[Any]:
    """A link dump, retried when the kernel reports it was interrupted by a change."""
    for attempt in range(RETRIES):
        try:
            return list(ipr.get_links(**filters))
        except Exception as exc:
            if type(exc).__name__ != "NetlinkDumpInterrupted" or attempt == RETRIES - 1:
                raise
    return []


def _get(ipr: IPRoute, **key: Any) -> Link | None:
    """One RTM_GETLINK looked up by the kernel (a dump would cost more with every pod)."""
    try:
        msgs = list(ipr.link("get", **key))
    except Exception as exc:
        if netlink_errno(exc) == errno.ENODEV:
            return None
        raise
    return _to_link(msgs[0]) if msgs else None


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
    return [_to_link(m) for m in _dump(ipr)]


def set_link(ipr: IPRoute, link: Link, **attrs: Any) -> None:
    ipr.link("set", index=link.index, **attrs)


def set_up(ipr: IPRoute, link: Link) -> None:
    ipr.link("set", index=link.index, state="up")


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
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
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
    finally:
        os.close(host_fd)
    raise InternalError("failed to find a free host veth name after 10 attempts")


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Delete `name` if present; False when it was already gone."""
    try:
        ipr.link("del", ifname=name)
    except Exception as exc:
        if netlink_errno(exc) in (errno.ENODEV, errno.ENOENT):
            return False
        raise
    return True


def addresses(ipr: IPRoute, index: int, family: int = 0) -> list[IPInterface]:
    found: list[IPInterface] = []
    for msg in ipr.get_addr(index=index, family=family) if family else ipr.get_addr(index=index):
        found.append(ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"))
    return found


def add_address(ipr: IPRoute, index: int, addr: IPInterface, nodad: bool = False) -> None:
    attrs: dict[str, Any] = {"index": index, "address": str(addr.ip), "prefixlen": addr.network.prefixlen}
    if addr.version == 4:
        attrs["broadcast"] = str(addr.network.broadcast_address) if addr.network.prefixlen < 31 else None
        attrs = {k: v for k, v in attrs.items() if v is not None}
    elif nodad:
        attrs["flags"] = 0x02  # IFA_F_NODAD
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
    for msg in ipr.get_routes(family=family, table=254):
        if index is not None and msg.get("RTA_OIF") != index:
            continue
        dst = msg.get("RTA_DST") or ("0.0.0.0" if family == 2 else "::")
        gw = msg.get("RTA_GATEWAY")
        found.append(
            (
                ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False),
                ipaddress.ip_address(gw) if gw else None,
            )
        )
    return found


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
