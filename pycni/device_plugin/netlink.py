"""The node's links as netlink sees them: a link-state table, the default-route netdevs, and an
event socket that wakes the daemon on every RTM_NEWLINK/RTM_DELLINK.

All pyroute2 use of the device plugin is here. `netns` (a name or path, None for our own) exists
so tests can point the daemon at a namespace holding veth stand-ins for VF and PF netdevs.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from pyroute2 import IPRoute

from pycni.device_plugin.pools import LinkState
from pycni.net.netns import entered

log = logging.getLogger(__name__)

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
RTMGRP_LINK = 0x1
RT_TABLE_MAIN = 254


def _open(netns: str | None) -> Any:
    return IPRoute(netns=netns, flags=0) if netns else IPRoute()


class LinkView:
    """Reads the link table and default routes of one network namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: Any = _open(netns)

    def close(self) -> None:
        self._ipr.close()

    def links(self) -> dict[str, LinkState]:
        out: dict[str, LinkState] = {}
        for msg in self._ipr.get_links():
            name = msg.get_attr("IFLA_IFNAME")
            flags = int(msg["flags"])
            out[name] = LinkState(up=bool(flags & IFF_UP), carrier=bool(flags & IFF_LOWER_UP))
        return out

    def default_route_netdevs(self) -> set[str]:
        """Netdevs that carry a default route (IPv4 or IPv6, main table), multipath included."""
        names = {msg["index"]: msg.get_attr("IFLA_IFNAME") for msg in self._ipr.get_links()}
        found: set[str] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in self._ipr.get_routes(family=family, table=RT_TABLE_MAIN):
                if route["dst_len"] != 0:
                    continue
                oifs = [route.get_attr("RTA_OIF")]
                for hop in route.get_attr("RTA_MULTIPATH") or []:
                    oifs.append(hop["oif"])
                found.update(names[i] for i in oifs if i in names)
        return found


class LinkEvents:
    """A raw rtnetlink socket subscribed to link changes; `fileno()` goes into the daemon's selector.

    A plain socket rather than a pyroute2 object: pyroute2's synchronous facade pulls pending
    messages off its sockets from whichever thread calls into it next, so a bare fd watched by our
    selector would miss them. We only need the wake-up; the state comes from a `LinkView` dump.
    """

    def __init__(self, netns: str | None = None) -> None:
        if netns:
            with entered(netns if netns.startswith("/") else f"/run/netns/{netns}"):
                self._sock = _subscribe()
        else:
            self._sock = _subscribe()

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> int:
        """Reads everything pending without blocking; returns how many datagrams came."""
        count = 0
        while True:
            try:
                if not self._sock.recv(65536):
                    return count
            except BlockingIOError:
                return count
            except OSError as err:  # ENOBUFS: we missed some, which only means "re-read everything"
                log.debug("netlink overrun", extra={"error": str(err)})
            count += 1

    def close(self) -> None:
        self._sock.close()


def _subscribe() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((0, RTMGRP_LINK))
    except OSError:
        sock.close()
        raise
    return sock
