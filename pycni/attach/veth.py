"""A pod's attachment to a bridge: veth, port settings, IPAM, addresses, routes, rules.

The one home for veth handling: the bridge plugin calls it after ensuring its bridge, and
the vxlan plugin after ensuring its VXLAN device and bridge.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.attach.veth_conf import VethAttachConf
from pycni.cni import callerview
from pycni.cni.errors import InternalError
from pycni.cni.ipaddr import IPInterface
from pycni.cni.rollback import BestEffort, quietly
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import DNS, Interface, IPConfig, Result, Route
from pycni.libcni import delegate
from pycni.net import addresses, bridge_port, firewall, links, lock, netns, newlink, sysctl
from pycni.net.iface import configure_iface, verify_iface, zero_network

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.net.nlsock import Rtnl

POD_IF_INDEX = 2  # results list [bridge, host veth, pod veth]


@dataclass(frozen=True)
class PortOptions:
    hairpin: bool = False
    isolated: bool = False
    vlan: int = 0
    trunk: tuple[int, ...] = ()
    preserve_default_vlan: bool = False


def rule_owner(conf: VethAttachConf, rt: RuntimeArgs) -> firewall.RuleOwner:
    """The tag owner of this attachment's masquerade and spoof-check rules."""
    return firewall.RuleOwner(conf.name, rt.container_id, rt.ifname)


def attach(
    conf: VethAttachConf, rt: RuntimeArgs, ctx: Context, host: Rtnl, br: links.Link, port: PortOptions
) -> Result:
    """ADD for the pod side; every step's undo is registered as soon as the step succeeds."""
    with netns.rtnl(rt.netns) as pod, ExitStack() as undo:  # undo runs while pod is open
        mac = conf.requested_mac(rt.arg("MAC"))
        host_veth, pod_veth = newlink.setup_veth(host, pod, rt.ifname, mtu=conf.mtu, mac=mac, master=br.index)
        undo.callback(quietly(links.delete_link), pod, rt.ifname)
        configure_port(host, host_veth, br, port)
        owner = rule_owner(conf, rt)
        if conf.macspoofchk:
            firewall.setup_spoofcheck(owner, host_veth.name, pod_veth.mac, ctx.settings.run_dir)
            undo.callback(quietly(firewall.teardown_spoofcheck), owner, ctx.settings.run_dir)
        result = Result(
            cni_version=conf.cni_version,
            interfaces=[
                Interface(name=br.name, mac=br.mac),
                Interface(name=host_veth.name, mac=host_veth.mac, mtu=host_veth.mtu),
                Interface(name=pod_veth.name, mac=pod_veth.mac, mtu=pod_veth.mtu, sandbox=rt.netns),
            ],
        )
        if conf.has_ipam:
            _add_l3(conf, rt, ctx, host, pod, br, pod_veth, result, undo)
        elif not conf.disable_container_interface:
            links.set_up(pod, pod_veth)
        fresh = links.get_link(host, br.name)  # the bridge's MAC can change when its first port joins
        result.interfaces[0].mac = fresh.mac
        undo.pop_all()
        return result


def configure_port(host: Rtnl, veth: links.Link, br: links.Link, port: PortOptions) -> None:
    """The bridge port's modes and VLANs; it joins the bridge and goes up if it is not already."""
    if veth.master != br.index:
        links.set_link(host, veth, master=br.index)
    if port.hairpin or port.isolated:
        bridge_port.set_modes(host, veth, port.hairpin, port.isolated)
    if port.vlan or port.trunk:
        _configure_port_vlans(host, veth, port)
    if not veth.up:
        links.set_up(host, veth)


def _configure_port_vlans(host: Rtnl, veth: links.Link, port: PortOptions) -> None:
    try:
        if not port.preserve_default_vlan:
            bridge_port.delete_vlan(host, veth, bridge_port.DEFAULT_VID)
        if port.vlan:
            bridge_port.add_vlan(host, veth, port.vlan, native=True)
        elif port.trunk and not port.preserve_default_vlan:
            bridge_port.add_vlan(host, veth, bridge_port.DEFAULT_VID, native=True)
        for vid in port.trunk:
            bridge_port.add_vlan(host, veth, vid)
    except Exception as exc:
        raise InternalError(f"failed to set VLANs on bridge port {veth.name}: {exc}") from exc


def _add_l3(
    conf: VethAttachConf,
    rt: RuntimeArgs,
    ctx: Context,
    host: Rtnl,
    pod: Rtnl,
    br: links.Link,
    pod_veth: links.Link,
    result: Result,
    undo: ExitStack,
) -> None:
    assert conf.ipam is not None
    lease = delegate.add_with_undo(undo, ctx.delegate, conf.ipam.type, conf.raw, rt)
    if not lease.ips:
        raise InternalError("IPAM plugin returned missing IP config")
    result.ips = [_with_gateway(c, conf.is_gateway) for c in lease.ips]
    result.routes = list(lease.routes)
    if conf.is_default_gateway:
        result.routes += _default_routes(result)
    result.dns = DNS.model_validate(conf.dns) if conf.dns else lease.dns
    _pod_sysctls(rt, conf.enabledad)
    configure_iface(pod, rt.netns, pod_veth, result, POD_IF_INDEX)
    if conf.is_gateway:
        ensure_gateways(host, br, result.ips, conf.force_address, ctx.settings.run_dir)
    if conf.ip_masq:
        owner = rule_owner(conf, rt)
        addrs = [c.address for c in result.ips]
        firewall.setup_masq(owner, addrs, conf.ip_masq_backend, ctx.settings.run_dir)
        undo.callback(quietly(firewall.teardown_masq), owner, ctx.settings.run_dir)


def _with_gateway(cfg: IPConfig, is_gateway: bool) -> IPConfig:
    """All IPs name the pod veth; a gateway bridge without an IPAM gateway takes network+1."""
    gateway = cfg.gateway
    if gateway is None and is_gateway:
        gateway = cfg.address.network.network_address + 1
    return cfg.model_copy(update={"interface": POD_IF_INDEX, "gateway": gateway})


def _default_routes(result: Result) -> list[Route]:
    """A default route per family via its gateway, unless IPAM already gave one with a gateway."""
    have = {r.dst.version for r in result.routes if r.dst.prefixlen == 0 and r.gw is not None}
    added: list[Route] = []
    for cfg in result.ips:
        v = cfg.address.version
        if cfg.gateway is not None and v not in have:
            added.append(Route(dst=zero_network(v), gw=cfg.gateway))
            have.add(v)
    return added


def _pod_sysctls(rt: RuntimeArgs, enabledad: bool) -> None:
    with netns.entered(rt.netns):
        sysctl.write_if_present(f"net/ipv4/conf/{rt.ifname}/arp_notify", "1")
        if not enabledad:  # DAD adds ~2 s per pod on IPv6; the reference made it opt-in
            sysctl.write_if_present(f"net/ipv6/conf/{rt.ifname}/accept_dad", "0")
        else:
            sysctl.write_if_present(f"net/ipv6/conf/{rt.ifname}/enhanced_dad", "1")
            sysctl.write_if_present(f"net/ipv6/conf/{rt.ifname}/accept_dad", "1")


def ensure_gateways(host: Rtnl, br: links.Link, ips: list[IPConfig], force: bool, run_dir: Path) -> None:
    """Gateway addresses on the bridge, IP forwarding on; serialised per bridge.

    Every pod after the first finds them in place: that check needs no lock.
    """
    wanted = [
        ipaddress.ip_interface(f"{c.gateway}/{c.address.network.prefixlen}")
        for c in ips
        if c.gateway is not None
    ]
    if set(wanted) <= set(addresses.link_addresses(host, br.index)) and all(
        _forwarding(g.version) for g in wanted
    ):
        return
    with lock.flock(lock.resource_lock(run_dir, "bridge", br.name), what=f"bridge {br.name}"):
        for gw in wanted:
            _ensure_bridge_addr(host, br, gw, force)
            sysctl.write(_FORWARDING[gw.version], "1")
        links.set_link(
            host, br, address=links.get_link(host, br.name).mac
        )  # pin the MAC: no flapping as ports churn


_FORWARDING = {4: "net/ipv4/ip_forward", 6: "net/ipv6/conf/all/forwarding"}


def _forwarding(version: int) -> bool:
    return sysctl.read(_FORWARDING[version]) == "1"


def _ensure_bridge_addr(host: Rtnl, br: links.Link, gw: IPInterface, force: bool) -> None:
    for have in addresses.link_addresses(host, br.index):
        if have.version != gw.version or have.ip.is_link_local:
            continue
        if have == gw:
            return
        conflicts = gw.version == 4 or have.network.overlaps(gw.network)
        if not conflicts:
            continue
        if not force:
            raise InternalError(f"{br.name!r} already has an IP address different from {gw}: {have}")
        addresses.delete_address(host, br.index, have)
    addresses.add_address(host, br.index, gw, nodad=True)


def detach(conf: VethAttachConf, rt: RuntimeArgs, ctx: Context) -> None:
    """DEL (bridge's and vxlan's): every step runs even if an earlier one failed.

    The netns may already be gone; a CNI_NETNS that is not a netns counts as gone too.
    """
    rt = dataclasses.replace(rt, netns=netns.for_teardown(rt.netns))
    steps = BestEffort()
    steps.run("IPAM release", delegate.ipam, ctx.delegate, conf, rt, Command.DEL)
    if rt.netns:
        steps.run("pod interface removal", _delete_pod_link, rt)
    owner = rule_owner(conf, rt)
    if conf.ip_masq:  # a network without ipMasq never had rules; GC sweeps any left by a changed config
        steps.run("masquerade teardown", firewall.teardown_masq, owner, ctx.settings.run_dir)
    if conf.macspoofchk:
        steps.run("spoof-check teardown", firewall.teardown_spoofcheck, owner, ctx.settings.run_dir)
    steps.raise_if_failed()


def _delete_pod_link(rt: RuntimeArgs) -> None:
    if callerview.leave_link_to_caller(rt.netns, rt.ifname):
        return
    try:
        with netns.rtnl(rt.netns) as pod:
            links.delete_link(pod, rt.ifname)
    except netns.NetnsGone:
        pass


def delete_left_links(left: Sequence[callerview.LeftLink]) -> list[Exception | None]:
    """Delete the pod links DELs left to their in-process caller, each netns's in one batch
    (`links.delete_links_together`): what each failed with.

    A netns gone took its links with it; one that cannot be opened fails only its own links.
    """
    failures: list[Exception | None] = [None] * len(left)
    by_netns: dict[str, list[int]] = {}
    for i, link in enumerate(left):
        by_netns.setdefault(link.netns_path, []).append(i)
    for path, members in by_netns.items():
        try:
            with netns.rtnl(path) as pod:
                outcome = links.delete_links_together(pod, [left[i].ifname for i in members])
        except netns.NetnsGone:
            continue
        except Exception as exc:
            outcome = [exc] * len(members)
        for i, failure in zip(members, outcome, strict=True):
            failures[i] = failure
    return failures


def check(conf: VethAttachConf, rt: RuntimeArgs, ctx: Context, bridge: str) -> None:
    """CHECK against prevResult: bridge, pod veth (MAC), its host peer on the bridge, IPs, routes."""
    prev = conf.require_prev_result()
    delegate.ipam(ctx.delegate, conf, rt, Command.CHECK)
    with netns.rtnl() as host, netns.rtnl(rt.netns) as pod:
        br = links.find_link(host, bridge)
        if br is None or br.kind != "bridge":
            raise InternalError(f"bridge {bridge!r} is missing")
        veth = links.find_link(pod, rt.ifname)
        if veth is None:
            raise InternalError(f"interface {rt.ifname!r} is missing from {rt.netns}")
        expected = next((i for i in prev.interfaces if i.name == rt.ifname and i.sandbox), None)
        if expected and expected.mac and expected.mac.lower() != veth.mac:
            raise InternalError(f"{rt.ifname} has MAC {veth.mac}, expected {expected.mac}")
        peer = links.link_by_index(host, veth.peer_index)
        if peer is None or peer.master != br.index:
            raise InternalError(f"the host end of {rt.ifname} is not attached to bridge {bridge!r}")
        verify_iface(pod, veth, prev, _index_of(prev, rt))
    if conf.ip_masq:
        _check_masquerade(conf, rt, ctx, prev)


def _check_masquerade(conf: VethAttachConf, rt: RuntimeArgs, ctx: Context, prev: Result) -> None:
    """Every address prevResult gives the pod is masqueraded, by our rules or the reference's."""
    index = _index_of(prev, rt)
    wanted = {str(c.address.ip) for c in prev.ips if c.interface is None or c.interface == index}
    missing = wanted - firewall.masq_addresses(rule_owner(conf, rt), ctx.settings.run_dir)
    if missing:
        raise InternalError(f"no masquerade rule for {', '.join(sorted(missing))} of {rt.ifname}")


def _index_of(prev: Result, rt: RuntimeArgs) -> int | None:
    return next((n for n, i in enumerate(prev.interfaces) if i.name == rt.ifname and i.sandbox), None)


def status(conf: VethAttachConf, rt: RuntimeArgs, ctx: Context) -> None:
    """STATUS: IPAM's; a bridge made on demand has nothing else that could be unavailable."""
    delegate.ipam(ctx.delegate, conf, rt, Command.STATUS)


def gc(conf: VethAttachConf, rt: RuntimeArgs, ctx: Context) -> None:
    """GC: IPAM's, then our rules whose attachment is not valid (the reference never cleans them)."""
    steps = BestEffort()
    steps.run("IPAM GC", delegate.ipam, ctx.delegate, conf, rt, Command.GC)
    valid = conf.valid_attachments
    if valid is not None:
        keep = {(a.container_id, a.ifname) for a in valid}
        steps.run("rule GC", firewall.gc_rules, conf.name, keep, ctx.settings.run_dir)
    steps.raise_if_failed()
