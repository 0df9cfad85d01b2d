"""Creating links (`ip link add`): bridges and veth pairs, each in one RTM_NEWLINK request.

`create_link` is the request every kind shares (VXLAN devices too, `pycni.net.vxlan_link`):
NLM_F_EXCL, so an existing link is never taken for a new one, and optionally up from its first
moment. A veth is made by one request in the host namespace with its peer already named and
placed in the pod and its host end on the bridge and up, so no transiently named device ever
shows in either namespace.
"""

from __future__ import annotations

import errno
import secrets
from typing import Any

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL
from pyroute2.netlink.rtnl import RTM_NEWLINK

from pycni.cni.errors import InternalError
from pycni.net.links import IFF_UP, Link, LinkExists, find_link, get_link, link_msg, set_up
from pycni.net.nlsock import Rtnl, tolerating

VETH_NAME_ATTEMPTS = 10


class VlanFilteringUnsupported(InternalError):
    """The kernel refused a bridge with VLAN filtering (EOPNOTSUPP: built without it)."""


def create_link(
    ipr: Rtnl, kind: str, attrs: list[tuple[str, Any]], data: list[tuple[str, Any]], up: bool = False
) -> None:
    """RTM_NEWLINK with NLM_F_EXCL: a new link of `kind` (`data`: its IFLA_INFO_DATA attributes)."""
    info: list[tuple[str, Any]] = [("IFLA_INFO_KIND", kind)]
    if data:
        info.append(("IFLA_INFO_DATA", {"attrs": data}))
    flags = IFF_UP if up else 0
    msg = link_msg(0, [*attrs, ("IFLA_LINKINFO", {"attrs": info})], flags, flags)
    ipr.nl.change(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)


def ensure_bridge(ipr: Rtnl, name: str, mtu: int | None = None, vlan_filtering: bool = False) -> Link:
    """The bridge `name`, created (with `mtu`) if missing, verified to be a bridge, and up.

    MTU and VLAN filtering apply only at creation, as in the reference: an existing bridge
    belongs to whoever made it. EEXIST from a concurrent creator is fine; a kernel without VLAN
    filtering is `VlanFilteringUnsupported`.
    """
    link = find_link(ipr, name)
    if link is None:
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)]
        if mtu:
            attrs.append(("IFLA_MTU", mtu))
        data = [("IFLA_BR_VLAN_FILTERING", 1)] if vlan_filtering else []
        refusals = (errno.EEXIST, errno.EOPNOTSUPP) if vlan_filtering else (errno.EEXIST,)
        with tolerating(*refusals, failure=f"could not create bridge {name!r}") as refused:
            create_link(ipr, "bridge", attrs, data, up=True)
        if refused.errno == errno.EOPNOTSUPP:
            msg = f"could not create bridge {name!r}: this kernel does not support bridge VLAN filtering"
            raise VlanFilteringUnsupported(msg) from refused.error
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
    host: Rtnl,
    pod: Rtnl,
    ifname: str,
    mtu: int | None = None,
    mac: str | None = None,
    master: int | None = None,
) -> tuple[Link, Link]:
    """A veth pair made by one request in the host namespace, its peer born in the pod.

    The pod end is created with its final name, MTU and MAC directly in the pod's namespace.
    With `master`, the host end is created on that bridge and up; without, down. The pod end
    is down. Returns (host side, pod side).
    """
    mtu_attr = [("IFLA_MTU", mtu)] if mtu else []
    peer: list[tuple[str, Any]] = [("IFLA_IFNAME", ifname), ("IFLA_NET_NS_FD", pod.netns_fd), *mtu_attr]
    if mac:
        peer.append(("IFLA_ADDRESS", mac))
    for _ in range(VETH_NAME_ATTEMPTS):
        host_name = random_veth_name()
        attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", host_name), *mtu_attr]
        if master:
            attrs.append(("IFLA_MASTER", master))
        data = [("VETH_INFO_PEER", {"attrs": peer})]
        with tolerating(errno.EEXIST, failure=f"failed to create veth pair for {ifname}") as taken:
            create_link(host, "veth", attrs, data, up=bool(master))
        if not taken:
            return get_link(host, host_name), get_link(pod, ifname)
        if find_link(pod, ifname) is not None:
            raise LinkExists(f"container veth name provided ({ifname}) already exists")
        # else the random host name was taken: pick another
    raise InternalError(f"failed to find a free host veth name after {VETH_NAME_ATTEMPTS} attempts")
