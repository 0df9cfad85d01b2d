"""IP addresses of links, typed (`ip addr`): listing, adding, deleting.

Requests go over the `Rtnl`'s synchronous socket; answers become `ipaddress` objects, so no
netlink message leaves this module.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from pycni.cni.ipaddr import IPAddress, IPInterface
from pycni.net.nlsock import Rtnl, dump, tolerating

IFA_F_NODAD = 0x02  # linux/if_addr.h: skip duplicate address detection
RT_SCOPE_UNIVERSE = 0  # a global address
FAMILIES = (socket.AF_INET, socket.AF_INET6)


def family_of(version: int) -> int:
    """The address family (AF_INET / AF_INET6) of IP version 4 or 6."""
    return socket.AF_INET if version == 4 else socket.AF_INET6


@dataclass(frozen=True)
class LinkAddress:
    """An address and the index of the link holding it."""

    index: int
    address: IPAddress


def _addr_dump(ipr: Rtnl, index: int | None, family: int = 0) -> list[Any]:
    """Address messages (the kernel sends every link's; this one's are kept)."""
    msg = ifaddrmsg()
    msg["family"] = family
    return [m for m in dump(lambda: ipr.nl.dump(msg, RTM_GETADDR)) if index is None or m["index"] == index]


def link_addresses(ipr: Rtnl, index: int, family: int = 0) -> list[IPInterface]:
    """The addresses of link `index` (of `family`, or both) with their prefix lengths."""
    return [
        ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        for msg in _addr_dump(ipr, index, family)
    ]


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
    """Add `addr` to link `index` (IPv6: without DAD when `nodad`); already there is fine."""
    msg = _addr_msg(index, addr, IFA_F_NODAD if nodad and addr.version == 6 else 0, broadcast=True)
    with tolerating(errno.EEXIST, failure=f"failed to add address {addr} to link {index}"):
        ipr.nl.change(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)


def delete_address(ipr: Rtnl, index: int, addr: IPInterface) -> None:
    """Remove `addr` from link `index`; an address or link already gone is done."""
    with tolerating(errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
        ipr.nl.change(_addr_msg(index, addr), RTM_DELADDR)
