"""The node's links as netlink sees them: a link-state table, the default-route netdevs, and an
event socket that wakes a node service (the device plugin, the DRA driver) on every
RTM_NEWLINK/RTM_DELLINK.

Dumps go through `pycni.net.links` and `pycni.net.routes` on a socket opened inside the
namespace (`netns.rtnl`, no helper process); the event socket is a raw one of our own. `netns`
(a name or path, None for our own) exists so tests can point a service at a namespace holding
veth stand-ins for VF and PF netdevs.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from pycni.net import links, routes
from pycni.net.netns import entered, open_netns, rtnl

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1  # linux/rtnetlink.h: the multicast group of link changes


@dataclass(frozen=True)
class LinkState:
    """A netdev as netlink reports it: administratively up, and with carrier (IFF_LOWER_UP)."""

    up: bool
    carrier: bool


def _netns_path(netns: str) -> str:
    """A namespace name (as `ip netns add` makes them) or a path, as a path."""
    return netns if netns.startswith("/") else f"/run/netns/{netns}"


class LinkView:
    """Reads the link table and default routes of one network namespace.

    Each read opens a socket of its own in the held namespace (`netns.rtnl` on its fd), so reads
    from different threads never share one. The namespace is held by an fd from construction to
    `close`, as a long-lived socket would.
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._netns_fd = open_netns(_netns_path(netns)) if netns else None

    def close(self) -> None:
        if self._netns_fd is not None:
            os.close(self._netns_fd)
            self._netns_fd = None

    def links(self) -> dict[str, LinkState]:
        with rtnl(self._netns_fd) as ipr:
            return {link.name: LinkState(up=link.up, carrier=link.carrier) for link in links.list_links(ipr)}

    def default_route_netdevs(self) -> set[str]:
        """Netdevs that carry a default route (IPv4 or IPv6, main table), multipath included."""
        with rtnl(self._netns_fd) as ipr:
            names = {link.index: link.name for link in links.list_links(ipr)}
            return {names[index] for index in routes.default_route_ifindexes(ipr) if index in names}


class LinkEvents:
    """A raw rtnetlink socket subscribed to link changes; `fileno()` goes into the service's selector.

    A plain socket rather than a pyroute2 object: pyroute2's synchronous facade pulls pending
    messages off its sockets from whichever thread calls into it next, so a bare fd watched by our
    selector would miss them. We only need the wake-up; the state comes from a `LinkView` dump.
    """

    def __init__(self, netns: str | None = None) -> None:
        if netns:
            with entered(_netns_path(netns)):
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
