"""VXLAN devices (`ip link add ... type vxlan`), created and read back typed.

The vxlan plugin decides what the device of a VNI must look like; this module only speaks
netlink: the IFLA_VXLAN_* attributes going in, and those coming back in a link dump.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni.cni.ipaddr import IPAddress
from pycni.net import ip

if TYPE_CHECKING:
    from pyroute2 import IPRoute


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

    link: ip.Link
    vni: int
    port: int
    underlay_index: int
    local: IPAddress | None
    group: IPAddress | None
    learning: bool


def add_vxlan(ipr: IPRoute, params: VxlanParams) -> None:
    """Create the device, down; EEXIST and every other refusal are raised as they come."""
    v6 = params.local.version == 6
    attrs: dict[str, Any] = {
        "ifname": params.name,
        "kind": "vxlan",
        "mtu": params.mtu,
        "vxlan_id": params.vni,
        "vxlan_port": params.port,
        "vxlan_link": params.underlay_index,
        "vxlan_learning": int(params.learning),
        ("vxlan_local6" if v6 else "vxlan_local"): str(params.local),
    }
    if params.group is not None:
        attrs["vxlan_group6" if v6 else "vxlan_group"] = str(params.group)
    ipr.link("add", **attrs)


def vxlan_links(ipr: IPRoute, vni: int) -> list[VxlanLink]:
    """Every VXLAN device carrying `vni`, whatever its name."""
    found = []
    for msg in ip.dump(ipr.get_links):
        data = _vxlan_data(msg)
        if data is not None and data.get("IFLA_VXLAN_ID") == vni:
            found.append(_to_vxlan_link(ip.to_link(msg), data))
    return found


def _vxlan_data(msg: Any) -> Any:
    info = msg.get("IFLA_LINKINFO")
    if not info or info.get("IFLA_INFO_KIND") != "vxlan":
        return None
    return info.get("IFLA_INFO_DATA")


def _to_vxlan_link(link: ip.Link, data: Any) -> VxlanLink:
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
