"""VXLAN devices (`ip link add ... type vxlan`), created and read back typed.

The vxlan plugin decides what the device of a VNI must look like; this module only speaks
netlink: the IFLA_VXLAN_* attributes going in, and those coming back in a link dump.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.rtnl import RTM_GETLINK

from pycni.cni.ipaddr import IPAddress
from pycni.net.links import RTEXT_FILTER_SKIP_STATS, Link, link_msg, to_link
from pycni.net.newlink import create_link
from pycni.net.nlsock import Rtnl, dump


@dataclass(frozen=True)
class VxlanParams:
    """A VXLAN device to create: all on one address family, that of `local`."""

    name: str
    vni: int
    port: int
    underlay_index: int
    local: IPAddress
    group: IPAddress | None
    learning: bool
    mtu: int


@dataclass(frozen=True)
class VxlanLink:
    """A VXLAN device as the kernel reports it."""

    link: Link
    vni: int
    port: int
    underlay_index: int
    local: IPAddress | None
    group: IPAddress | None
    learning: bool


def add_vxlan(ipr: Rtnl, params: VxlanParams) -> None:
    """Create the device, down; EEXIST and every other refusal are raised as they come."""
    v6 = params.local.version == 6
    data: list[tuple[str, Any]] = [
        ("IFLA_VXLAN_ID", params.vni),
        ("IFLA_VXLAN_PORT", params.port),
        ("IFLA_VXLAN_LINK", params.underlay_index),
        ("IFLA_VXLAN_LEARNING", int(params.learning)),
        ("IFLA_VXLAN_LOCAL6" if v6 else "IFLA_VXLAN_LOCAL", str(params.local)),
    ]
    if params.group is not None:
        data.append(("IFLA_VXLAN_GROUP6" if v6 else "IFLA_VXLAN_GROUP", str(params.group)))
    create_link(ipr, "vxlan", [("IFLA_IFNAME", params.name), ("IFLA_MTU", params.mtu)], data)


def vxlan_links(ipr: Rtnl, vni: int) -> list[VxlanLink]:
    """Every VXLAN device carrying `vni`, whatever its name."""
    msg = link_msg(attrs=[("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)])
    found = []
    for reply in dump(lambda: ipr.nl.dump(msg, RTM_GETLINK)):
        data = _vxlan_data(reply)
        if data is not None and data.get("IFLA_VXLAN_ID") == vni:
            found.append(_to_vxlan_link(to_link(reply), data))
    return found


def _vxlan_data(msg: Any) -> Any:
    info = msg.get("IFLA_LINKINFO")
    if not info or info.get("IFLA_INFO_KIND") != "vxlan":
        return None
    return info.get("IFLA_INFO_DATA")


def _to_vxlan_link(link: Link, data: Any) -> VxlanLink:
    local = data.get("IFLA_VXLAN_LOCAL") or data.get("IFLA_VXLAN_LOCAL6")
    group = data.get("IFLA_VXLAN_GROUP") or data.get("IFLA_VXLAN_GROUP6")
    return VxlanLink(
        link=link,
        vni=data.get("IFLA_VXLAN_ID"),
        port=data.get("IFLA_VXLAN_PORT"),
        underlay_index=data.get("IFLA_VXLAN_LINK") or 0,
        local=ipaddress.ip_address(local) if local else None,
        group=ipaddress.ip_address(group) if group else None,
        learning=bool(data.get("IFLA_VXLAN_LEARNING")),
    )
