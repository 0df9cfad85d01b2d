"""bridge ADD/DEL/CHECK/STATUS/GC: ensure the bridge, then attach the pod to it."""

from __future__ import annotations

import errno

from pycni.cni.errors import InternalError, netlink_errno
from pycni.cni.plugin import Context
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Result
from pycni.net import ip, lock, netns, veth_attach
from pycni.plugins.bridge.config import BridgeConf


def port_options(conf: BridgeConf) -> veth_attach.PortOptions:
    trunk = tuple(vid for entry in conf.vlan_trunk for vid in entry.vids())
    return veth_attach.PortOptions(
        hairpin=conf.hairpin_mode,
        isolated=conf.port_isolation,
        vlan=conf.vlan,
        trunk=trunk,
        preserve_default_vlan=conf.preserve_default_vlan,
    )


def add(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> Result:
    with netns.rtnl() as host:
        with lock.flock(
            lock.resource_lock(ctx.settings.run_dir, "bridge", conf.bridge), what=f"bridge {conf.bridge}"
        ):
            try:
                br = ip.ensure_bridge(host, conf.bridge, conf.mtu, vlan_filtering=conf.uses_vlans)
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
            if conf.promisc_mode:
                ip.set_promisc(host, br)
        return veth_attach.attach(conf, rt, ctx, host, br, port_options(conf))


def delete(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    veth_attach.detach(conf, rt, ctx)


def check(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    veth_attach.check(conf, rt, ctx, conf.bridge)


def status(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    veth_attach.status(conf, rt, ctx)


def gc(conf: BridgeConf, rt: RuntimeArgs, ctx: Context) -> None:
    veth_attach.gc(conf, rt, ctx)
