"""host-device ADD/DEL/CHECK/STATUS/GC.

ADD claims the device (a state record written under a short node-wide lock, so two pods can
never both take it), then moves it in and runs IPAM, each step with its undo on an ExitStack.
DEL runs every step and reports failures at the end: IPAM release always happens, a missing
netns or device is "done" (so is a CNI_NETNS that is not a netns), and an orphan the kernel put
back under its pod-side name gets its original name back.

The runner has judged the whole config, the `ipam` section included, before any verb runs (the
type declares `delegates_ipam`), so an invalid one is refused before anything is claimed or
moved; so is an ADD whose result could not be printed. STATUS and GC are every device-lending
plugin's (`pycni.attach.device.upkeep`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.attach.device import giveback, move, upkeep
from pycni.attach.device.record import DeviceState, StateStore
from pycni.cni.errors import InternalError
from pycni.cni.rollback import BestEffort, quietly
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import DNS, Interface, Result
from pycni.hw import devinfo
from pycni.hw.sysfs import DeviceNotFound, SysFs
from pycni.libcni import delegate
from pycni.net import links, lock, netns
from pycni.net.iface import configure_iface, verify_iface
from pycni.plugins.host_device import selection
from pycni.plugins.host_device.config import HostDeviceConf
from pycni.plugins.host_device.selection import DeviceInUse, Target

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.net.nlsock import Rtnl

POD_IF_INDEX = 0  # the result lists only the pod's interface


@contextmanager
def claims_locked(run_dir: Path) -> Iterator[None]:
    """The node-wide lock around reading and writing claims; held for milliseconds, never for IPAM."""
    with lock.flock(lock.resource_lock(run_dir, "host-device", "claims"), what="host-device claims"):
        yield


def _store(ctx: Context) -> StateStore:
    return StateStore(ctx.settings.state_dir / "host-device")


def add(conf: HostDeviceConf, rt: RuntimeArgs, ctx: Context) -> Result:
    conf.require_selector()
    store = _store(ctx)
    with ExitStack() as undo, netns.rtnl() as host, netns.rtnl(rt.netns) as pod:
        if links.find_link(pod, rt.ifname) is not None:
            raise links.LinkExists(f"interface {rt.ifname!r} already exists in {rt.netns}")
        rec, target = _claim(conf, rt, host, SysFs(ctx.settings.sysfs_root), store, ctx.settings.run_dir)
        undo.callback(quietly(store.remove), rec)
        rec = _write_devinfo(conf, target, rec, store, undo)
        link = None
        if target.link is not None:
            link = _move_in(host, pod, target.link, rt, rec, undo)
        result = Result(cni_version=conf.cni_version, interfaces=[_interface(rt, target, link)])
        if conf.has_ipam:
            _add_ipam(conf, rt, ctx, result, undo)
        if link is not None:
            if result.ips:
                configure_iface(pod, rt.netns, link, result, POD_IF_INDEX)
            else:
                links.set_up(pod, link)
        undo.pop_all()
        return result


def _claim(
    conf: HostDeviceConf, rt: RuntimeArgs, host: Rtnl, sysfs: SysFs, store: StateStore, run_dir: Path
) -> tuple[DeviceState, Target]:
    """Find the device and record it as ours, unless another attachment's record names it."""
    sel = selection.selector(conf)
    me = (conf.name, rt.container_id, rt.ifname)
    with claims_locked(run_dir):
        giveback.reclaim_released(store, host)
        target = selection.find(conf, host, sysfs)
        held = selection.holder(store.all(), target, sel, me)
        if held is not None:
            raise DeviceInUse(selection.in_use_message(held, sel))
        if target is None:
            raise DeviceNotFound(f"no device matching {sel} in the node network namespace")
        rec = _record(conf, rt, target)
        store.save(rec)
    return rec, target


def _record(conf: HostDeviceConf, rt: RuntimeArgs, target: Target) -> DeviceState:
    base = DeviceState(
        network=conf.name,
        container_id=rt.container_id,
        ifname=rt.ifname,
        netns=rt.netns,
        mode="userspace",
        selector=target.selector,
        pci_address=target.pci_address,
    )
    link = target.link
    if link is None:
        return base
    return base.model_copy(
        update={
            "mode": "netdev",
            "name": link.name,
            "index": link.index,
            "mac": link.mac,
            "mtu": link.mtu,
            "up": link.up,
            "alias": link.alias,
            "altnames": link.altnames,
        }
    )


def _write_devinfo(
    conf: HostDeviceConf, target: Target, rec: DeviceState, store: StateStore, undo: ExitStack
) -> DeviceState:
    """NPWG device-info for a PCI device, when the runtime gave a file and nobody filled it."""
    path = conf.runtime_config.device_info_file
    if not path or target.pci_address is None:
        return rec
    if not devinfo.write_if_absent(Path(path), devinfo.pci_info(target.pci_address, target.pf_address)):
        return rec
    undo.callback(quietly(devinfo.remove), path)
    rec = rec.model_copy(update={"device_info_file": path})
    store.save(rec)
    return rec


def _move_in(
    host: Rtnl, pod: Rtnl, link: links.Link, rt: RuntimeArgs, rec: DeviceState, undo: ExitStack
) -> links.Link:
    pod_fd = netns.open_netns(rt.netns)
    try:
        with netns.own_fd() as node_fd:
            move.move_in(host, link, pod_fd, rt.ifname, node_fd)
    finally:
        os.close(pod_fd)
    undo.callback(quietly(giveback.return_device), rt.netns, rt.ifname, rec)
    return links.get_link(pod, rt.ifname)


def _interface(rt: RuntimeArgs, target: Target, link: links.Link | None) -> Interface:
    if link is None:
        return Interface(name=rt.ifname, sandbox=rt.netns, pci_id=target.pci_address)
    return Interface(name=link.name, mac=link.mac, mtu=link.mtu, sandbox=rt.netns, pci_id=target.pci_address)


def _add_ipam(conf: HostDeviceConf, rt: RuntimeArgs, ctx: Context, result: Result, undo: ExitStack) -> None:
    """IPAM for the pod interface; for a userspace device the IPs are reported, not configured."""
    assert conf.ipam is not None
    lease = delegate.add_with_undo(undo, ctx.delegate, conf.ipam.type, conf.raw, rt)
    result.ips = [c.model_copy(update={"interface": POD_IF_INDEX}) for c in lease.ips]
    result.routes = list(lease.routes)
    result.dns = DNS.model_validate(conf.dns) if conf.dns else lease.dns


def delete(conf: HostDeviceConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Every step runs; the netns, the device and the record may each be gone already.

    A config no ADD could have taken was refused (code 7) by the runner.
    """
    steps = BestEffort()
    steps.run("IPAM release", delegate.ipam, ctx.delegate, conf, rt, Command.DEL)
    store = _store(ctx)
    with claims_locked(ctx.settings.run_dir):
        rec = store.load(conf.name, rt.container_id, rt.ifname)
        pod_path = netns.for_teardown(rt.netns or (rec.netns if rec else ""))
        steps.run("returning the device to the node", _give_back, store, pod_path, rt.ifname, rec, conf)
    steps.raise_if_failed()


def _give_back(
    store: StateStore, pod_path: str, ifname: str, rec: DeviceState | None, conf: HostDeviceConf
) -> None:
    returned = giveback.return_device(pod_path, ifname, rec)
    if rec is not None:
        _forget(store, rec, returned)
    elif not returned:
        _restore_their_orphan(conf, ifname)


def _restore_their_orphan(conf: HostDeviceConf, ifname: str) -> None:
    """A device the reference lent, back in the node under its pod name because the pod's netns
    died (the reference's own DEL fails then, plugins#1196): known by the ifalias the reference
    set, which must name the configured device (or the device have the configured MAC)."""
    with netns.rtnl() as host:
        link = links.find_link(host, ifname)
        if link is None or not link.alias or links.find_link(host, link.alias) is not None:
            return
        if link.alias == conf.device or (conf.hwaddr and link.mac == conf.hwaddr.lower()):
            move.restore_in_place(host, link, move.Restore(link.alias))


def _forget(store: StateStore, rec: DeviceState, returned: bool) -> None:
    """Drop the record, or mark it released when the device is nowhere to be seen yet."""
    devinfo.remove(rec.device_info_file)
    if returned or rec.mode == "userspace":
        store.remove(rec)
    elif not rec.released:
        store.save(rec.model_copy(update={"released": True, "device_info_file": None}))


def check(conf: HostDeviceConf, rt: RuntimeArgs, ctx: Context) -> None:
    """The device is in the pod under CNI_IFNAME with prevResult's MAC, addresses and routes.

    A device the reference lent (no record of ours) is known by the ifalias it set: its node name.
    """
    prev = conf.require_prev_result()
    delegate.ipam(ctx.delegate, conf, rt, Command.CHECK)
    rec = _store(ctx).load(conf.name, rt.container_id, rt.ifname)
    held = f"host-device holds no device for {rt.container_id}/{rt.ifname}"
    if rec is not None and rec.released:
        raise InternalError(held)
    if rec is not None and rec.mode == "userspace":
        _check_userspace(rec, SysFs(ctx.settings.sysfs_root))
        return
    with netns.rtnl(rt.netns) as pod:
        link = links.find_link(pod, rt.ifname)
        if link is None:
            raise InternalError(f"interface {rt.ifname!r} is missing from {rt.netns}")
        if rec is None and not link.alias:  # without our record, only the reference's marker makes it lent
            raise InternalError(held)
        expected = next((i for i in prev.interfaces if i.name == rt.ifname and i.sandbox), None)
        if expected is not None and expected.mac and expected.mac.lower() != link.mac:
            raise InternalError(f"{rt.ifname} has MAC {link.mac}, expected {expected.mac}")
        verify_iface(pod, link, prev, POD_IF_INDEX)


def _check_userspace(rec: DeviceState, sysfs: SysFs) -> None:
    assert rec.pci_address is not None
    if not sysfs.exists(rec.pci_address):
        raise InternalError(f"PCI device {rec.pci_address} is gone")
    if not sysfs.is_userspace_driver(rec.pci_address):
        raise InternalError(f"PCI device {rec.pci_address} is no longer bound to a userspace driver")


def status(conf: HostDeviceConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Ready when the state directory is writable (ADD must record) and IPAM is ready."""
    upkeep.status(conf, rt, ctx, _store(ctx))


def gc(conf: HostDeviceConf, rt: RuntimeArgs, ctx: Context) -> None:
    """Release this network's attachments that are not valid: device back, record gone, then IPAM GC."""
    store = _store(ctx)
    sysfs = SysFs(ctx.settings.sysfs_root)
    held = claims_locked(ctx.settings.run_dir)
    upkeep.collect(conf, rt, ctx, store, lambda rec: _release(store, rec, sysfs), DeviceState.describe, held)


def _release(store: StateStore, rec: DeviceState, sysfs: SysFs) -> None:
    """Give the device back and drop its record, unless it is on its way back.

    A PCI device that sysfs still lists but whose netdev is nowhere to be seen is in a netns the
    kernel is still tearing down, and comes back to the node down: its record stays, released,
    so the next ADD or GC gives it its state back (as sriov keeps a released VF's). Anything else
    not found is gone for good (a virtual device dies with its netns), and so is its record.
    """
    returned = giveback.return_device(rec.netns, rec.ifname, rec)
    if not returned and rec.pci_address is not None and sysfs.exists(rec.pci_address):
        _forget(store, rec, returned)
        return
    devinfo.remove(rec.device_info_file)
    store.remove(rec)
