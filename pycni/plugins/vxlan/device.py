"""The node side of an overlay: the underlay, one VXLAN device and one bridge per VNI.

All state lives in the kernel. The device is found by its VNI (and named `vx<vni>`), never
by a remembered name, so several simulated nodes can share one filesystem. Devices we
create carry an ifalias marker: GC removes only what is marked, never a bridge an operator
made and named in `bridge`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycni.cni.errors import InternalError, InvalidConfig
from pycni.cni.ipaddr import IPAddress
from pycni.cni.rollback import quietly
from pycni.net import addresses, links, newlink, routes
from pycni.net.vxlan_link import VxlanLink, VxlanParams, add_vxlan, vxlan_links
from pycni.plugins.vxlan.config import VxlanConf

if TYPE_CHECKING:
    from pycni.net.nlsock import Rtnl

OVERHEAD = {4: 50, 6: 70}  # inner Ethernet 14 + outer IP (20 | 40) + UDP 8 + VXLAN 8
MARKER = "pycni-vxlan"


class UnderlayUnavailable(InternalError):
    """No interface to carry the tunnel: ADD cannot work (STATUS reports it as code 50)."""


@dataclass(frozen=True)
class Underlay:
    link: links.Link
    local: IPAddress

    @property
    def overhead(self) -> int:
        return OVERHEAD[self.local.version]


@dataclass(frozen=True)
class VxlanSpec:
    """What the VXLAN device of a VNI must look like on this node."""

    name: str
    vni: int
    port: int
    underlay: Underlay
    group: IPAddress | None
    learning: bool
    mtu: int

    def params(self) -> VxlanParams:
        return VxlanParams(
            name=self.name,
            vni=self.vni,
            port=self.port,
            underlay_index=self.underlay.link.index,
            local=self.underlay.local,
            group=self.group,
            learning=self.learning,
            mtu=self.mtu,
        )


def node_addresses(host: Rtnl) -> set[IPAddress]:
    return {found.address for found in addresses.global_addresses(host)}


def resolve_underlay(host: Rtnl, conf: VxlanConf) -> Underlay:
    """`underlay` and/or `localIP` as given; else the route towards the first remote or group."""
    if conf.underlay:
        link = links.find_link(host, conf.underlay)
        if link is None:
            raise UnderlayUnavailable(f"underlay interface {conf.underlay!r} does not exist")
        return Underlay(link, conf.local_ip or _address_on(host, link, conf.ip_version))
    if conf.local_ip is not None:
        index = next((a.index for a in addresses.global_addresses(host) if a.address == conf.local_ip), None)
        if index is None:
            raise UnderlayUnavailable(f"localIP {conf.local_ip} is not an address of this node")
        return Underlay(_link(host, index), conf.local_ip)
    return _routed_underlay(host, conf)


def _address_on(host: Rtnl, link: links.Link, version: int | None) -> IPAddress:
    """The first global address of `link` (IPv4 first unless the config pins IPv6)."""
    found = [
        a.address
        for a in addresses.global_addresses(host, link.index)
        if version in (None, a.address.version)
    ]
    found.sort(key=lambda a: a.version)
    if not found:
        raise UnderlayUnavailable(
            f"underlay {link.name!r} has no global IPv{version or 4} address for the tunnel"
        )
    return found[0]


def _link(host: Rtnl, index: int) -> links.Link:
    link = links.link_by_index(host, index)
    if link is None:
        raise UnderlayUnavailable(f"underlay interface index {index} vanished")
    return link


def _routed_underlay(host: Rtnl, conf: VxlanConf) -> Underlay:
    """Whatever interface the node would use to reach the first peer (its own address skipped)."""
    own = node_addresses(host)
    target = next((r for r in conf.remotes or [] if r not in own), conf.group)
    if target is None:
        return _default_route_underlay(host, conf.ip_version or 4)
    route = routes.route_to(host, target)
    if route is None:
        raise UnderlayUnavailable(f"no route towards {target}; set underlay or localIP")
    link = _link(host, route.oif)
    return Underlay(link, route.prefsrc or _address_on(host, link, target.version))


def _default_route_underlay(host: Rtnl, version: int) -> Underlay:
    """The first default route with a single outgoing link (multipath routes are passed over)."""
    defaults = routes.default_routes(host, addresses.family_of(version))
    oif = next((route.oif for route in defaults if route.oif), None)
    if oif is None:
        raise UnderlayUnavailable(
            f"no default IPv{version} route to pick an underlay from; set underlay or localIP"
        )
    link = _link(host, oif)
    return Underlay(link, _address_on(host, link, version))


def spec_for(conf: VxlanConf, underlay: Underlay) -> VxlanSpec:
    """The device we want; an explicit `mtu` the underlay cannot carry unfragmented is refused."""
    fits = underlay.link.mtu - underlay.overhead
    if conf.mtu is not None and conf.mtu > fits:
        raise InvalidConfig(
            f"mtu: {conf.mtu} does not fit underlay {underlay.link.name!r} (MTU {underlay.link.mtu}) "
            f"after {underlay.overhead} bytes of VXLAN overhead; at most {fits}"
        )
    return VxlanSpec(
        name=conf.device_name,
        vni=conf.vni,
        port=conf.port,
        underlay=underlay,
        group=conf.group,
        learning=conf.learning,
        mtu=conf.mtu or fits,
    )


def differences(have: VxlanLink, want: VxlanSpec, have_underlay: str) -> list[str]:
    """What differs between an existing device and the config, in words an operator can act on."""
    pairs: list[tuple[str, object, object]] = [
        ("port", have.port, want.port),
        ("group", have.group, want.group),
        ("underlay", have_underlay, want.underlay.link.name),
        ("localIP", have.local, want.underlay.local),
        ("learning", have.learning, want.learning),
        ("mtu", have.link.mtu, want.mtu),
    ]
    return [f"{key} is {h} (config wants {w})" for key, h, w in pairs if h != w]


def find_vxlan(host: Rtnl, spec: VxlanSpec) -> VxlanLink | None:
    """Our device for the VNI, checked against the config; anything in the way is an error."""
    same_vni = vxlan_links(host, spec.vni)
    foreign = [s.link.name for s in same_vni if s.link.name != spec.name]
    if foreign:
        raise InternalError(f"VNI {spec.vni} is already carried by {', '.join(foreign)}, not by {spec.name}")
    by_name = links.find_link(host, spec.name)
    if by_name is not None and not same_vni:
        what = (
            "it carries another VNI" if by_name.kind == "vxlan" else f"it is {by_name.kind or 'a plain link'}"
        )
        raise InternalError(f"{spec.name!r} exists but is not the VXLAN device of VNI {spec.vni}: {what}")
    if not same_vni:
        return None
    have = same_vni[0]
    underlay = links.link_by_index(host, have.underlay_index) if have.underlay_index else None
    diff = differences(have, spec, underlay.name if underlay else "none")
    if diff:
        raise InternalError(
            f"VXLAN device {spec.name} for VNI {spec.vni} differs from the config: " + "; ".join(diff)
        )
    return same_vni[0]


def ensure_vxlan(host: Rtnl, spec: VxlanSpec, undo: ExitStack) -> links.Link:
    """The VNI's device, created (and its removal registered on `undo`) or verified, and up."""
    existing = find_vxlan(host, spec)
    if existing is not None:
        if not existing.link.up:
            links.set_up(host, existing.link)
        return links.get_link(host, spec.name)
    try:
        add_vxlan(host, spec.params())
    except Exception as exc:
        raise InternalError(f"failed to create VXLAN device {spec.name} for VNI {spec.vni}: {exc}") from exc
    undo.callback(quietly(links.delete_link), host, spec.name)
    link = links.get_link(host, spec.name)
    links.set_alias(host, link, MARKER)
    links.set_up(host, link)
    return links.get_link(host, spec.name)


def ensure_marked_bridge(host: Rtnl, name: str, mtu: int, undo: ExitStack) -> links.Link:
    """The VNI's bridge: `newlink.ensure_bridge`, plus ownership of a bridge this call creates.

    One it creates is marked as ours (GC may remove it) and removed again on rollback; an
    existing bridge is used as found, never marked.
    """
    if links.find_link(host, name) is not None:
        return newlink.ensure_bridge(host, name)
    br = newlink.ensure_bridge(host, name, mtu)
    undo.callback(quietly(links.delete_link), host, name)
    links.set_alias(host, br, MARKER)
    return links.get_link(host, name)


def enslave(host: Rtnl, dev: links.Link, br: links.Link) -> None:
    """Attach the VXLAN device to the bridge; attached elsewhere is a conflict, not a move."""
    if dev.master == br.index:
        return
    if dev.master:
        other = links.link_by_index(host, dev.master)
        raise InternalError(
            f"{dev.name} is attached to {other.name if other else dev.master}, not to bridge {br.name!r}"
        )
    links.set_link(host, dev, master=br.index)


def bridge_ports(host: Rtnl, br: links.Link) -> list[links.Link]:
    return [link for link in links.list_links(host) if link.master == br.index]


def remove_if_unused(host: Rtnl, conf: VxlanConf) -> list[str]:
    """Delete our VXLAN device and bridge of the VNI when no pod port is left; names removed.

    Call under the per-VNI lock, which ADD holds from device creation to pod attachment.
    """
    dev = links.find_link(host, conf.device_name)
    br = links.find_link(host, conf.bridge)
    in_use = br is not None and any(p.name != conf.device_name for p in bridge_ports(host, br))
    if in_use:
        return []
    removed = []
    for link in (dev, br):
        if link is not None and link.alias == MARKER and links.delete_link(host, link):
            removed.append(link.name)
    return removed
