"""Default-route edits in a pod's netns: which attachment carries the pod's default route.

The NPWG `default-route` selection moves the default route of a family to one attachment: the
default routes its plugins installed on every other interface go, and the requested gateways
are set on the chosen interface. Only main-table routes of the named interface are touched.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import TYPE_CHECKING

from pycni.cni.errors import InternalError, netlink_errno
from pycni.net import ip

if TYPE_CHECKING:
    from pyroute2 import IPRoute

    from pycni.cni.ipaddr import IPAddress

RT_TABLE_MAIN = 254


def family_number(version: int) -> int:
    """The socket address family of IP version 4 or 6."""
    return socket.AF_INET if version == 4 else socket.AF_INET6


def delete_default_routes(ipr: IPRoute, ifname: str, family: int) -> int:
    """Remove the main-table default routes of `family` leaving through `ifname`; how many went.

    No link of that name carries no route: nothing to remove (a network whose plugin made no
    interface, such as an IPAM plugin run as the main one)."""
    link = ip.find_link(ipr, ifname)
    if link is None:
        return 0
    doomed = [
        msg
        for msg in ip.dump(lambda: ipr.get_routes(family=family, table=RT_TABLE_MAIN))
        if msg["dst_len"] == 0 and msg.get("RTA_OIF") == link.index
    ]
    for msg in doomed:
        attrs = {"dst_len": 0, "oif": link.index, "family": family, "table": RT_TABLE_MAIN}
        gateway = msg.get("RTA_GATEWAY")
        if gateway:
            attrs["gateway"] = gateway
        priority = msg.get("RTA_PRIORITY")
        if priority is not None:
            attrs["priority"] = priority
        try:
            ipr.route("del", **attrs)
        except Exception as exc:
            if netlink_errno(exc) != errno.ESRCH:
                raise InternalError(f"failed to delete the default route via {ifname}: {exc}") from exc
    return len(doomed)


def set_default_route(ipr: IPRoute, ifname: str, gateway: IPAddress) -> None:
    """Make `gateway` on `ifname` the default route of its family (other defaults of `ifname` go)."""
    family = family_number(gateway.version)
    delete_default_routes(ipr, ifname, family)
    link = ip.get_link(ipr, ifname)
    dst = ipaddress.ip_network("0.0.0.0/0" if family == socket.AF_INET else "::/0")
    ip.add_route(ipr, dst, gateway, link.index)
