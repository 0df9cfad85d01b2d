"""vxlan ADD/DEL/CHECK/STATUS/GC: ensure the VNI's VXLAN device, its flood list and bridge,
then attach the pod exactly as the bridge plugin does (`pycni.attach.veth`).

ADD holds the per-VNI lock from device creation until the pod's veth is on the bridge, and
GC removes unused devices under the same lock, so GC never deletes a bridge an ADD is about
to use. DEL leaves the shared devices alone (upstream rejected delete-on-last-port for the
ADD/DEL race, plugins#283); GC removes them once no pod port is left.

The runner has judged the whole config, the `ipam` section included, before any verb runs (the
type declares `delegates_ipam`); ADD also checks the requested MAC, the link names and that the
pod's netns exists before it makes any node-side device.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.attach import veth
from pycni.cni.errors import InternalError, PluginNotAvailable, to_error
from pycni.cni.runtime import validate_link_name
from pycni.cni.types import Interface, Result
from pycni.net import links, lock, netns, offload
from pycni.plugins.vxlan import device, flood
from pycni.plugins.vxlan.config import VxlanConf

if TYPE_CHECKING:
    from pycni.cni.ipaddr import IPAddress
    from pycni.cni.plugin import Context
    from pycni.cni.runtime import RuntimeArgs
    from pycni.net.nlsock import Rtnl


log = logging.getLogger(__name__)


def vni_lock(conf: VxlanConf, run_dir: Path) -> AbstractContextManager[None]:
    """Serialises this node's device creation, pod attachment and device GC for one VNI."""
    return lock.flock(lock.resource_lock(run_dir, "vxlan", str(conf.vni)), what=f"VNI {conf.vni}")


def port_options(conf: VxlanConf) -> veth.PortOptions:
    return veth.PortOptions(hairpin=conf.hairpin_mode, isolated=conf.port_isolation)


def wanted_remotes(host: Rtnl, conf: VxlanConf) -> set[IPAddress]:
    """`remotes` minus this node's own addresses, so every node can share one config."""
    return set(conf.remotes or []) - device.node_addresses(host)


def add(conf: VxlanConf, rt: RuntimeArgs, ctx: Context) -> Result:
    """Node side under the VNI lock, then the pod side; a failure undoes what this ADD created.

    The pod veths get the device's MTU even when `mtu` is unset: a pod at 1500 behind a
    1450-byte tunnel would have its full-size frames dropped silently.
    """
    conf.validate_requested_mac(rt.arg("MAC"))
    validate_link_name("bridge", conf.bridge)
    if conf.underlay is not None:
        validate_link_name("underlay", conf.underlay)
    netns.require_netns(rt.netns)
    with netns.rtnl() as host, vni_lock(conf, ctx.settings.run_dir), ExitStack() as undo:
        spec = device.spec_for(conf, device.resolve_underlay(host, conf))
        vx = device.ensure_vxlan(host, spec, undo)
        if conf.remotes is not None:
            flood.reconcile(host, vx.index, wanted_remotes(host, conf))
        if conf.disable_tx_checksum_offload:
            offload.disable_tx_checksum_offload(vx.name)
        br = device.ensure_marked_bridge(host, conf.bridge, spec.mtu, undo)
        device.enslave(host, vx, br)
        if conf.promisc_mode:
            links.set_promisc(host, br)
        result = veth.attach(conf.model_copy(update={"mtu": spec.mtu}), rt, ctx, host, br, port_options(conf))
        result.interfaces.append(Interface(name=vx.name, mac=vx.mac, mtu=vx.mtu))
        undo.pop_all()
        return result


#: DEL is the pod side's alone, as the bridge plugin's: the shared devices go in GC.
delete = veth.detach


def check(conf: VxlanConf, rt: RuntimeArgs, ctx: Context) -> None:
    """The node side (device, flood list, bridge, offload), then the pod side."""
    with netns.rtnl() as host:
        spec = device.spec_for(conf, device.resolve_underlay(host, conf))
        state = device.find_vxlan(host, spec)
        if state is None:
            raise InternalError(f"VXLAN device {spec.name} for VNI {conf.vni} is missing")
        if conf.remotes is not None:
            flood.verify(host, state.link.index, spec.name, wanted_remotes(host, conf))
        br = links.find_link(host, conf.bridge)
        if br is None or state.link.master != br.index:
            raise InternalError(f"{spec.name} is not attached to bridge {conf.bridge!r}")
        if not state.link.up:
            raise InternalError(f"{spec.name} is down")
    if conf.disable_tx_checksum_offload and offload.tx_checksum_offload(spec.name):
        raise InternalError(f"{offload.FEATURE} is on for {spec.name}, config says off")
    veth.check(conf, rt, ctx, conf.bridge)


def status(conf: VxlanConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Ready when an underlay can be found (else code 50) and IPAM is ready."""
    with netns.rtnl() as host:
        try:
            device.resolve_underlay(host, conf)
        except device.UnderlayUnavailable as err:
            raise PluginNotAvailable(err.msg) from err
    veth.status(conf, rt, ctx)


def gc(conf: VxlanConf, rt: RuntimeArgs, ctx: Context) -> None:
    """The pod side's GC (IPAM, rules), then this VNI's devices if no pod uses them any more."""
    errors: list[str] = []
    try:
        veth.gc(conf, rt, ctx)
    except Exception as exc:  # GC goes on; every failure is reported at the end
        errors.append(f"pod side: {to_error(exc).msg}")
    try:
        _gc_devices(conf, ctx.settings.run_dir)
    except Exception as exc:  # as above
        errors.append(f"devices: {to_error(exc).msg}")
    if errors:
        raise InternalError("; ".join(errors))


def _gc_devices(conf: VxlanConf, run_dir: Path) -> None:
    with netns.rtnl() as host, vni_lock(conf, run_dir):
        removed = device.remove_if_unused(host, conf)
    if removed:
        log.info("removed unused %s", ", ".join(removed), extra={"vni": conf.vni})
