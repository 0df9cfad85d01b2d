"""sriov ADD/DEL/CHECK/STATUS/GC.

ADD, under the VF's lock: refuse a VF another live pod holds (reclaim it if its netns is gone);
snapshot the VF's PF-side settings and netdev and record them durably; apply the PF-side
settings; move the netdev in (kernel mode) and set its MAC; IPAM; announce. Each step's undo is
on an ExitStack, so a failed ADD leaves the VF, its PF side and the IPAM store as they were.
A VF bound to a userspace driver (VFIO/DPDK) gets its PF-side settings and IPs, and is handed
over by reference (`pciID`, the NPWG device-info file) without moving anything.
DEL restores from the record, PF side first, and succeeds with the netns gone; a late DEL never
touches a VF that a newer pod holds. CHECK compares both sides with config and prevResult; GC
releases VFs of attachments that are not valid any more.

The runner has judged the whole config, the `ipam` section included, before any verb runs (the
type declares `delegates_ipam`), so an invalid one is refused before any VF is touched; so is an
ADD whose result could not be printed. DEL treats a CNI_NETNS that is not a network namespace as
a netns that is gone. STATUS and GC are every device-lending plugin's
(`pycni.attach.device.upkeep`), with sriov's own PF check and per-VF lock.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.attach.device import upkeep
from pycni.cni import logs
from pycni.cni.errors import AlreadyExists, InternalError, PluginError, PluginNotAvailable
from pycni.cni.rollback import BestEffort, quietly
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import DNS, Interface, Result
from pycni.hw import devinfo
from pycni.hw.sriov import VirtualFunction, pf_problem, virtual_function
from pycni.hw.sysfs import SysFs
from pycni.hw.vf_control import VfControl, vf_control
from pycni.libcni import delegate
from pycni.net import links, netns
from pycni.net.iface import configure_iface, verify_iface
from pycni.net.vf_state import ZERO_MAC, VfSettings
from pycni.plugins.sriov import adopt, reference
from pycni.plugins.sriov import pod as pod_side
from pycni.plugins.sriov.config import LOG_LEVELS, SriovConf
from pycni.plugins.sriov.release import VfCall, reclaim, release, release_and_forget
from pycni.plugins.sriov.state import Stores, VfAttachment, netns_id, vf_locked

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.net.nlsock import Rtnl

POD_IF_INDEX = 0  # the result lists only the pod's interface
log = logging.getLogger(__name__)


class VfInUse(PluginError):
    """Another attachment whose netns still exists holds the VF."""


def call_logging(conf: SriovConf) -> AbstractContextManager[None]:
    """sriov-cni's `logLevel`/`logFile` for this call (`logFile` alone logs at info), through the
    one per-call mechanism (`pycni.cni.logs.call_logging`); neither set: the process's own log."""
    if not conf.log_level and not conf.log_file:
        return nullcontext()
    return logs.call_logging(LOG_LEVELS[conf.log_level or "info"], conf.log_file)


def add(conf: SriovConf, rt: RuntimeArgs, ctx: Context) -> Result:
    address = conf.require_vf_address()
    wanted = conf.vf_settings(conf.effective_mac(rt))
    sysfs = SysFs(ctx.settings.sysfs_root)
    stores = Stores(ctx.settings.state_dir, ctx.settings.sriov_dir)
    vf = virtual_function(sysfs, address, need_netdev=False)
    with call_logging(conf), netns.rtnl() as host, netns.rtnl(rt.netns) as pod:
        if not vf.userspace and links.find_link(pod, rt.ifname) is not None:
            raise links.LinkExists(f"interface {rt.ifname!r} already exists in {rt.netns}")
        with vf_locked(ctx.settings.run_dir, address), ExitStack() as undo:
            call = VfCall(stores, vf_control(ctx.settings, host), sysfs)
            restored = take(call, address, conf, rt)
            vf = virtual_function(sysfs, address)
            rec = snapshot(conf, rt, vf, node_netdev(host, vf, restored), call.control, wanted)
            log.info(
                "attaching VF %s (VF %d of %s, %s mode) to %s as %s, PF side %s",
                vf.address, vf.index, vf.pf_netdev, rec.mode, rt.netns, rt.ifname, wanted.changes(),
            )  # fmt: skip
            undo.callback(quietly(release_and_forget), call, rec)
            stores.claim(rec)
            call.control.set(vf.pf_netdev, vf.index, wanted)
            link = _pod_netdev(host, pod, rt, rec) if rec.mode == "netdev" else None
            rec = write_devinfo(conf, vf, rec, stores, undo)
            stores.sriov_cni.write(
                rec.container_id, rec.ifname, rec.pci, rec.netns, reference.netconf(rec, conf.raw)
            )
            result = Result(cni_version=conf.cni_version, interfaces=[_interface(rt, rec, link)])
            if conf.has_ipam:
                _add_ipam(conf, rt, ctx, result, undo)
            if link is not None:
                _configure(pod, rt, link, result)
            undo.pop_all()
            log.debug("attached VF %s: %s", vf.address, result.model_dump(exclude_none=True))
            return result


def take(call: VfCall, pci: str, conf: SriovConf, rt: RuntimeArgs) -> str | None:
    """Make the VF free for this attachment: refuse a live holder, reclaim one whose netns is gone.

    Returns the name a reclaimed VF's netdev was restored under.
    """
    me = (conf.name, rt.container_id, rt.ifname)
    stores = call.stores
    leftover = stores.attachments.load(*me)
    if leftover is not None and leftover.pci != pci:
        raise AlreadyExists(
            f"container {rt.container_id} already holds VF {leftover.pci} as {rt.ifname} on network "
            f"{conf.name!r}: DEL it first"
        )
    holder = stores.holder(pci)
    if holder is not None and holder.alive():
        raise VfInUse(
            f"pci address {pci} is already allocated to {holder.describe()} in its netns {holder.netns}"
        )
    restored = reclaim(call, pci, holder) if holder is not None else None
    leftover = stores.attachments.load(*me)
    if leftover is not None:  # an ADD of ours that died before it could roll back
        release_and_forget(call, leftover)
        restored = leftover.name or restored
    return restored


def node_netdev(host: Rtnl, vf: VirtualFunction, restored: str | None = None) -> links.Link | None:
    """The VF's netdev in the node netns (None for a userspace VF).

    By the name sysfs lists at its PCI address, or the name a reclaim just gave it back.
    """
    if vf.userspace:
        return None
    for name in (*vf.netdevs, *([restored] if restored else [])):
        link = links.find_link(host, name)
        if link is not None:
            return link
    raise InternalError(
        f"netdev {vf.netdev} of VF {vf.address} is not in the node network namespace (is it in a pod?)"
    )


def snapshot(
    conf: SriovConf,
    rt: RuntimeArgs,
    vf: VirtualFunction,
    link: links.Link | None,
    control: VfControl,
    wanted: VfSettings,
) -> VfAttachment:
    """The record of the VF as it is now, PF side and netdev, and of what ADD is about to set."""
    netdev: dict[str, object] = {}
    if link is not None:
        netdev = {
            "name": link.name, "index": link.index, "mac": link.mac, "mtu": link.mtu,
            "up": link.up, "alias": link.alias, "altnames": link.altnames,
        }  # fmt: skip
    return VfAttachment.model_validate(
        {
            "network": conf.name,
            "container_id": rt.container_id,
            "ifname": rt.ifname,
            "netns": rt.netns,
            "netns_id": netns_id(rt.netns),
            "mode": "userspace" if link is None else "netdev",
            "selector": f"deviceID={vf.address}",
            "pci_address": vf.address,
            "pf_netdev": vf.pf_netdev,
            "vf_index": vf.index,
            "original": control.get(vf.pf_netdev, vf.index),
            "applied": wanted,
            "pod_mac": wanted.mac if link is not None and wanted.mac and wanted.mac != link.mac else "",
            **netdev,
        }
    )


def _pod_netdev(host: Rtnl, pod: Rtnl, rt: RuntimeArgs, rec: VfAttachment) -> links.Link:
    """The VF's netdev moved into the pod under CNI_IFNAME, with the configured MAC."""
    link = pod_side.move_in(host, pod, links.get_link(host, rec.name), rt.netns, rt.ifname)
    if rec.pod_mac and link.mac != rec.pod_mac:
        link = pod_side.set_mac(pod, link, rec.pod_mac)
    return link


def write_devinfo(
    conf: SriovConf, vf: VirtualFunction, rec: VfAttachment, stores: Stores, undo: ExitStack
) -> VfAttachment:
    """The NPWG device-info, when the runtime names a file and nobody (a meta-plugin) filled it.

    Only `pci-address` and `pf-pci-address` are ours to say; `vhost-net` and `rdma-device` are the
    device plugin's, and reach the file through the meta-plugin's copy, which is never replaced.
    """
    path = conf.runtime_config.device_info_file
    if not path or Path(path).exists():
        return rec
    undo.callback(quietly(devinfo.remove), path)
    devinfo.write_if_absent(Path(path), devinfo.pci_info(vf.address, vf.pf_address))
    rec = rec.model_copy(update={"device_info_file": path})
    stores.attachments.save(rec)
    return rec


def _interface(rt: RuntimeArgs, rec: VfAttachment, link: links.Link | None) -> Interface:
    if link is not None:
        return Interface(name=link.name, mac=link.mac, mtu=link.mtu, sandbox=rt.netns, pci_id=rec.pci)
    admin = rec.applied.mac or rec.original.mac  # sriov-cni reports a set administrative MAC
    return Interface(
        name=rt.ifname, mac=None if admin == ZERO_MAC else admin, sandbox=rt.netns, pci_id=rec.pci
    )


def _add_ipam(conf: SriovConf, rt: RuntimeArgs, ctx: Context, result: Result, undo: ExitStack) -> None:
    """IPAM for the pod interface; for a userspace VF the IPs are reported, not configured."""
    assert conf.ipam is not None
    lease = delegate.add_with_undo(undo, ctx.delegate, conf.ipam.type, conf.raw, rt)
    result.ips = [c.model_copy(update={"interface": POD_IF_INDEX}) for c in lease.ips]
    result.routes = list(lease.routes)
    result.dns = DNS.model_validate(conf.dns) if conf.dns else lease.dns


def _configure(pod: Rtnl, rt: RuntimeArgs, link: links.Link, result: Result) -> None:
    """Addresses, routes and link up; then tell the segment where the addresses are now."""
    if result.ips:
        configure_iface(pod, rt.netns, link, result, POD_IF_INDEX)
        pod_side.announce_addresses(pod, rt.netns, link, [c.address.ip for c in result.ips])
    else:
        links.set_up(pod, link)


def delete(conf: SriovConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Every step runs; the netns, the VF's netdev and the record may each be gone already.

    A config no ADD could have taken was refused (code 7) by the runner.
    """
    steps = BestEffort()
    stores = Stores(ctx.settings.state_dir, ctx.settings.sriov_dir)
    sysfs = SysFs(ctx.settings.sysfs_root)
    rec = stores.attachments.load(conf.name, rt.container_id, rt.ifname) or adopt.adopted(
        stores, sysfs, rt.container_id, rt.ifname, rt.netns
    )
    if rec is None:
        steps.run("IPAM release", delegate.ipam, ctx.delegate, conf, rt, Command.DEL)
        steps.raise_if_failed()
        return
    with call_logging(conf), vf_locked(ctx.settings.run_dir, rec.pci), netns.rtnl() as host:
        call = VfCall(stores, vf_control(ctx.settings, host), sysfs)
        returned: list[bool] = []
        pod_path = netns.for_teardown(rt.netns or rec.netns)
        log.info("releasing VF %s of %s from %s", rec.pci, rec.describe(), pod_path or "a gone netns")
        steps.run(f"releasing VF {rec.pci}", lambda: returned.append(_release_if_mine(call, rec, pod_path)))
        steps.run("IPAM release", delegate.ipam, ctx.delegate, conf, rt, Command.DEL)
        if returned and not steps.errors:
            _forget(call, rec, returned[0])
    steps.raise_if_failed()


def _release_if_mine(call: VfCall, rec: VfAttachment, pod_path: str) -> bool:
    """Release the VF unless a newer attachment holds it now (a late DEL, sriov-cni#219)."""
    holder = call.stores.holder(rec.pci)
    if holder is not None and holder.key != rec.key:
        log.warning("VF %s is held by %s now: leaving it alone", rec.pci, holder.describe())
        return True
    return release(call, rec, pod_path)


def _forget(call: VfCall, rec: VfAttachment, returned: bool) -> None:
    """Drop the records, or mark them released while the netdev has not come back from a dead netns.

    A released record keeps the VF's claim: the VF stays reserved until ADD or GC find its netdev
    back in the node and restore it.
    """
    devinfo.remove(rec.device_info_file)
    if returned:
        call.stores.forget(rec)
    elif not rec.released:
        log.info("netdev %s of VF %s is not back in the node yet: marked released", rec.name, rec.pci)
        call.stores.attachments.save(rec.model_copy(update={"released": True, "device_info_file": None}))


def check(conf: SriovConf, rt: RuntimeArgs, ctx: Context) -> None:
    """PF-side settings match the config; the netdev is in the pod as prevResult says."""
    prev = conf.require_prev_result()
    stores = Stores(ctx.settings.state_dir, ctx.settings.sriov_dir)
    sysfs = SysFs(ctx.settings.sysfs_root)
    rec = stores.attachments.load(conf.name, rt.container_id, rt.ifname)
    theirs = adopt.adopted(stores, sysfs, rt.container_id, rt.ifname, rt.netns) if rec is None else None
    if (rec is None or rec.released) and theirs is None:
        raise InternalError(f"sriov holds no VF for {rt.container_id}/{rt.ifname} on network {conf.name!r}")
    delegate.ipam(ctx.delegate, conf, rt, Command.CHECK)
    if theirs is not None:  # sriov-cni's attachment: its marker is the claim
        rec = theirs
        if stores.sriov_cni.marked_netns(rec.pci) != rt.netns:
            raise InternalError(f"VF {rec.pci} is no longer marked allocated to {rt.netns}")
    else:
        assert rec is not None
        holder = stores.holder(rec.pci)
        if holder is None or holder.key != rec.key:
            raise InternalError(f"VF {rec.pci} is no longer claimed by {rec.describe()}")
    problem = pf_problem(sysfs, rec.pci)
    if problem:
        raise InternalError(problem)
    with netns.rtnl() as host:
        state = vf_control(ctx.settings, host).get(rec.pf_netdev, rec.vf_index)
    drift = conf.vf_settings(conf.effective_mac(rt)).differences(state)
    if drift:
        raise InternalError(
            f"VF {rec.pci} (VF {rec.vf_index} of {rec.pf_netdev}) drifted: {'; '.join(drift)}"
        )
    if rec.mode == "userspace":
        if not sysfs.is_userspace_driver(rec.pci):
            raise InternalError(f"VF {rec.pci} is no longer bound to a userspace driver")
        return
    with netns.rtnl(rt.netns) as pod:
        _check_netdev(pod, rt, prev, rec)


def _check_netdev(pod: Rtnl, rt: RuntimeArgs, prev: Result, rec: VfAttachment) -> None:
    link = links.find_link(pod, rt.ifname)
    if link is None:
        raise InternalError(f"interface {rt.ifname!r} is missing from {rt.netns}")
    expected = next((i for i in prev.interfaces if i.name == rt.ifname and i.sandbox), None)
    mac = (expected.mac.lower() if expected and expected.mac else None) or rec.pod_mac or None
    if mac and link.mac != mac:
        raise InternalError(f"{rt.ifname} has MAC {link.mac}, expected {mac}")
    if expected is not None and expected.mtu and link.mtu != expected.mtu:
        raise InternalError(f"{rt.ifname} has MTU {link.mtu}, expected {expected.mtu}")
    verify_iface(pod, link, prev, POD_IF_INDEX)


def status(conf: SriovConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Ready when state can be recorded and the VF's PF is there with VFs (or sysfs is readable)."""
    sysfs = SysFs(ctx.settings.sysfs_root)
    upkeep.status(
        conf,
        rt,
        ctx,
        Stores(ctx.settings.state_dir, ctx.settings.sriov_dir).attachments,
        lambda: _pf_ready(conf, sysfs),
    )


def _pf_ready(conf: SriovConf, sysfs: SysFs) -> None:
    address = conf.vf_address
    if address is not None:
        problem = pf_problem(sysfs, address)
        if problem:
            raise PluginNotAvailable(problem)
    elif not sysfs.pci_bus_readable():
        raise PluginNotAvailable(f"cannot read the PCI devices in sysfs (at {sysfs.root})")


def gc(conf: SriovConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Release this network's VFs whose attachment is not valid (or was released), then IPAM GC."""
    stores = Stores(ctx.settings.state_dir, ctx.settings.sriov_dir)
    sysfs = SysFs(ctx.settings.sysfs_root)
    upkeep.collect(
        conf,
        rt,
        ctx,
        stores.attachments,
        lambda rec: _collect(stores, rec, sysfs, ctx),
        lambda rec: f"VF {rec.pci} of {rec.describe()}",
    )
    if conf.valid_attachments is not None:  # sriov-cni's attachments of this network, not valid any more
        valid = {f"{a.container_id}-{a.ifname}" for a in conf.valid_attachments}
        steps = BestEffort()
        for rec in adopt.stale(stores, sysfs, conf.name, valid):
            steps.run(
                f"releasing sriov-cni's VF {rec.pci} of {rec.describe()}", _collect, stores, rec, sysfs, ctx
            )
        steps.raise_if_failed()


def _collect(stores: Stores, rec: VfAttachment, sysfs: SysFs, ctx: Context) -> None:
    """GC of one attachment, under its VF's lock; a VF someone else holds now is left alone."""
    with vf_locked(ctx.settings.run_dir, rec.pci), netns.rtnl() as host:
        holder = stores.holder(rec.pci)
        if holder is None or holder.key == rec.key:
            release_and_forget(VfCall(stores, vf_control(ctx.settings, host), sysfs), rec)
        else:
            devinfo.remove(rec.device_info_file)
            stores.forget(rec)
