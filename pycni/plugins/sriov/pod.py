"""The VF's netdev on the pod side: moved in under CNI_IFNAME, its MAC set, its addresses announced."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pycni.attach.device import move
from pycni.cni.errors import InternalError
from pycni.cni.ipaddr import IPAddress
from pycni.net import announce, links, netns, sysctl

if TYPE_CHECKING:
    from pycni.net.nlsock import Rtnl

log = logging.getLogger(__name__)

#: Some VF drivers (iavf) apply a MAC asynchronously; wait this long for the netdev to show it.
MAC_SETTLE_SECONDS = 1.0
#: sriov-cni waits this long for carrier before announcing (a VF may take a moment to link up).
CARRIER_WAIT_SECONDS = 0.2


def move_in(host: Rtnl, pod: Rtnl, link: links.Link, pod_path: str, ifname: str) -> links.Link:
    """The netdev into the pod under `ifname` (through a temporary netns), set to announce itself.

    `arp_notify`/`ndisc_notify`: the kernel then announces on every link-up and MAC change.
    """
    move.move_into_pod(host, link, pod_path, ifname)
    with netns.entered(pod_path):
        sysctl.write_if_present(f"net/ipv4/conf/{ifname}/arp_notify", "1")
        sysctl.write_if_present(f"net/ipv6/conf/{ifname}/ndisc_notify", "1")
    return links.get_link(pod, ifname)


def set_mac(pod: Rtnl, link: links.Link, mac: str) -> links.Link:
    """Give the pod's netdev `mac`, and wait (bounded) until the kernel reports it."""
    links.set_link(pod, link, address=mac)
    deadline = time.monotonic() + MAC_SETTLE_SECONDS
    current = links.get_link(pod, link.name)
    while current.mac != mac:
        if time.monotonic() > deadline:
            raise InternalError(f"{link.name} still has MAC {current.mac} instead of {mac}")
        time.sleep(0.02)  # the driver applies the MAC asynchronously; poll with a deadline
        current = links.get_link(pod, link.name)
    return current


def announce_addresses(pod: Rtnl, pod_path: str, link: links.Link, addresses: list[IPAddress]) -> None:
    """A gratuitous ARP / unsolicited NA per address, once the link has carrier (or 200 ms passed).

    Best effort, as in sriov-cni: it only speeds up neighbours, so a failure is logged, not raised.
    """
    deadline = time.monotonic() + CARRIER_WAIT_SECONDS
    while not links.get_link(pod, link.name).carrier and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the carrier with a deadline
    try:
        sent = announce.announce(pod_path, link.name, link.mac, addresses)
    except OSError as err:
        log.warning("could not announce %s on %s: %s", addresses, link.name, err)
        return
    log.debug("announced %d addresses on %s", sent, link.name)
