"""bridge ADD/DEL/CHECK/STATUS/GC: ensure the bridge, then attach the pod to it.

Every verb first judges the whole config, the `ipam` section included (`delegate.validate_ipam`),
so an invalid one is refused before the kernel is touched. ADD also checks that the pod's netns
exists before it creates the bridge, and a bridge this ADD created goes again if the ADD fails
and no other pod has joined it meanwhile.
"""

from __future__ import annotations

import dataclasses
import errno
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.attach import veth
from pycni.cni.errors import InternalError, netlink_errno
from pycni.cni.plugin import Context, check_add, check_link_name, check_requested_mac
from pycni.cni.rollback import quietly
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Result
from pycni.libcni import delegate
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
    delegate.validate_ipam(ctx.delegate, conf, rt)
    check_add(conf)
    check_requested_mac(conf, rt)
    check_link_name("bridge", conf.bridge)
    netns.require_netns(rt.netns)
    with netns.rtnl() as host, ExitStack() as undo:
        br = _ensure_bridge(host, conf, ctx.settings.run_dir, undo)
        result = veth.attach(conf, rt, ctx, host, br, port_options(conf))
        undo.pop_all()
        return result


def _bridge_lock(run_dir: Path, name: str) -> AbstractContextManager[None]:
    return lock.flock(lock.resource_lock(run_dir, "bridge", name), what=f"bridge {name}")


def _ensure_bridge(host: Rtnl, conf: BridgeConf, run_dir: Path, undo: ExitStack) -> links.Link:
    """The bridge, made if missing (its removal then registered on `undo`), up, promiscuous if asked."""
    with _bridge_lock(run_dir, conf.bridge):
        created = links.find_link(host, conf.bridge) is None
        try:
            br = newlink.ensure_bridge(host, conf.bridge, conf.mtu, vlan_filtering=conf.uses_vlans)
        except InternalError as err:
            if (
                conf.uses_vlans
                and isinstance(err.__cause__, Exception)
                and netlink_errno(err.__cause__) == errno.EOPNOTSUPP
            ):
                raise InternalError(
                    "vlan/vlanTrunk need bridge VLAN filtering, which this kernel does not support"
                ) from err
            raise
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


def delete(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Refuses (code 7) a config no ADD could have taken; a CNI_NETNS that is not a netns is gone."""
    delegate.validate_ipam(ctx.delegate, conf, rt)
    veth.detach(conf, dataclasses.replace(rt, netns=netns.for_teardown(rt.netns)), ctx)


def check(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    delegate.validate_ipam(ctx.delegate, conf, rt)
    veth.check(conf, rt, ctx, conf.bridge)


def status(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    delegate.validate_ipam(ctx.delegate, conf, rt)
    veth.status(conf, rt, ctx)


def gc(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    delegate.validate_ipam(ctx.delegate, conf, rt)
    veth.gc(conf, rt, ctx)
