"""bridge ADD/DEL/CHECK/STATUS/GC: ensure the bridge, then attach the pod to it.

The runner has judged the whole config, the `ipam` section included, before any verb runs (the
type declares `delegates_ipam`). ADD also checks the requested MAC, the bridge name and that the
pod's netns exists before it creates the bridge, and a bridge this ADD created goes again if the
ADD fails and no other pod has joined it meanwhile. DEL, STATUS and GC are the pod side's alone
(`pycni.attach.veth`, shared with vxlan): the bridge stays, as in the reference.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.attach import veth
from pycni.cni.errors import InternalError
from pycni.cni.plugin import Context
from pycni.cni.rollback import quietly
from pycni.cni.runtime import RuntimeArgs, validate_link_name
from pycni.cni.types import Result
from pycni.net import links, lock, netns, newlink
from pycni.plugins.bridge.config import BridgeConf

if TYPE_CHECKING:
    from pycni.net.nlsock import Rtnl


def port_options(conf: BridgeConf) -> veth.PortOptions:
    trunk = tuple(vid for entry in conf.vlan_trunk for vid in entry.vids())
    return veth.PortOptions(
        hairpin=conf.hairpin_mode,
        isolated=conf.port_isolation,
        vlan=conf.vlan,
        trunk=trunk,
        preserve_default_vlan=conf.preserve_default_vlan,
    )


def add(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> Result:
    conf.validate_requested_mac(rt.arg("MAC"))
    validate_link_name("bridge", conf.bridge)
    netns.require_netns(rt.netns)
    with netns.rtnl() as host, ExitStack() as undo:
        br = _ensure_bridge(host, conf, ctx.settings.run_dir, undo)
        result = veth.attach(conf, rt, ctx, host, br, port_options(conf))
        undo.pop_all()
        return result


def _bridge_lock(run_dir: Path, name: str) -> AbstractContextManager[None]:
    return lock.flock(lock.resource_lock(run_dir, "bridge", name), what=f"bridge {name}")


def _ensure_bridge(host: Rtnl, conf: BridgeConf, run_dir: Path, undo: ExitStack) -> links.Link:
    """The bridge, made if missing (its removal then registered on `undo`), up, promiscuous if asked.

    Every pod after the first finds it ready: one lookup, no lock (a bridge a failing ADD is
    removing under the lock makes this ADD fail cleanly on its missing master, as when the
    lookup came just before the lock). Anything to change is done under the bridge's lock.
    """
    found = links.find_link(host, conf.bridge)
    if found is not None and found.kind == "bridge" and found.up and (found.promisc or not conf.promisc_mode):
        return found
    with _bridge_lock(run_dir, conf.bridge):
        created = links.find_link(host, conf.bridge) is None
        try:
            br = newlink.ensure_bridge(host, conf.bridge, conf.mtu, vlan_filtering=conf.uses_vlans)
        except newlink.VlanFilteringUnsupported as err:
            raise InternalError(
                "vlan/vlanTrunk need bridge VLAN filtering, which this kernel does not support"
            ) from err
        if created:
            undo.callback(quietly(remove_if_unused), host, br, run_dir)
        if conf.promisc_mode:
            links.set_promisc(host, br)
    return br


def remove_if_unused(host: Rtnl, br: links.Link, run_dir: Path) -> None:
    """Undo of a bridge a failed ADD created: removed unless a port joined it meanwhile.

    Under the bridge's lock, which every ADD takes to find or make it; a pod whose ADD found it
    just before and has not attached yet fails cleanly on its missing master and is retried.
    """
    with _bridge_lock(run_dir, br.name):
        if not any(link.master == br.index for link in links.list_links(host)):
            links.delete_link(host, br)


delete = veth.detach
status = veth.status
gc = veth.gc


def check(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    veth.check(conf, rt, ctx, conf.bridge)
