"""A bridge port's own settings: hairpin, isolation, VLAN membership (`bridge link`, `bridge vlan`).

Kept apart from `links` because they are requests to the bridge about one of its ports
(IFLA_PROTINFO, AF_BRIDGE IFLA_AF_SPEC), not link attributes. VLAN membership needs the bridge's
VLAN filtering; kernels without it refuse with EOPNOTSUPP, which the caller reports. The
requests are pyroute2's (`Rtnl.pyroute2()`), for these rare calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycni.net.links import Link
    from pycni.net.nlsock import Rtnl

BRIDGE_VLAN_INFO_PVID = 0x2  # linux/if_bridge.h: untagged ingress frames get this VLAN
BRIDGE_VLAN_INFO_UNTAGGED = 0x4  # egress frames of this VLAN leave untagged
DEFAULT_VID = 1  # the VLAN every port joins when it is added to a filtering bridge


def set_modes(ipr: Rtnl, port: Link, hairpin: bool, isolated: bool) -> None:
    """Hairpin (frames may go back out the port they came in on) and port isolation."""
    ipr.pyroute2().brport("set", index=port.index, mode=int(hairpin), isolated=int(isolated))


def add_vlan(ipr: Rtnl, port: Link, vid: int, native: bool = False) -> None:
    """Make `port` a member of VLAN `vid`; `native`: its PVID, sent untagged (an access port)."""
    info: dict[str, int] = {"vid": vid}
    if native:
        info["flags"] = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED
    ipr.pyroute2().vlan_filter("add", index=port.index, vlan_info=info)


def delete_vlan(ipr: Rtnl, port: Link, vid: int) -> None:
    ipr.pyroute2().vlan_filter("del", index=port.index, vlan_info={"vid": vid})
