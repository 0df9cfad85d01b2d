"""Giving a device back to the node: from the pod, as an orphan, or finishing a half-done return.

Used by DEL, by GC and by ADD's rollback, and by ADD for orphans of finished attachments. A
device is looked for, in order: in the pod (by CNI_IFNAME, or by alias/MAC if the pod renamed it,
plugins#773); in the node under another name (the kernel put it back when the pod's netns died);
in the node under its original name (a return that stopped before the attributes were restored).
A caller that knows the device's current node-side names from elsewhere (sriov: the netdev sysfs
lists at the VF's PCI address) passes them as `node_names`, so an orphan is found even when the
pod cleared its alias and changed its MAC.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pycni.attach.device import move
from pycni.attach.device.record import DeviceState, StateStore
from pycni.cni.rollback import quietly
from pycni.net import links, netns

if TYPE_CHECKING:
    from pycni.net.nlsock import Rtnl


def return_device(
    pod_path: str, ifname: str, rec: DeviceState | None, node_names: tuple[str, ...] = ()
) -> bool:
    """Put the device back in the node netns as recorded; False when it cannot be found anywhere."""
    if rec is not None and rec.mode == "userspace":
        return True
    with netns.rtnl() as host, netns.own_fd() as node_fd:
        if pod_path and _return_from_pod(pod_path, ifname, rec, host, node_fd):
            return True
        if rec is None:
            return False
        found = find_orphan(host, rec, node_names) or _restored(host, rec, node_names)
        if found is None:
            return False
        move.restore_in_place(host, found, move.Restore.of(rec))
        return True


def _return_from_pod(pod_path: str, ifname: str, rec: DeviceState | None, host: Rtnl, node_fd: int) -> bool:
    try:
        pod_fd = netns.open_netns(pod_path)
    except (netns.NetnsGone, netns.NotANetns):
        return False
    try:
        with netns.rtnl(pod_fd) as pod:
            link = _pod_link(pod, ifname, rec)
            if link is None:
                return False
            restore = move.Restore.of(rec) if rec is not None else move.Restore(link.alias)
            move.move_out(pod, pod_fd, link, host, node_fd, restore)
            return True
    finally:
        os.close(pod_fd)


def _pod_link(pod: Rtnl, ifname: str, rec: DeviceState | None) -> links.Link | None:
    """Our device in the pod: by CNI_IFNAME, or by alias/MAC if the pod renamed it (plugins#773).

    Without a record only a link whose alias names its node name is taken (the reference's marker):
    anything else under CNI_IFNAME was never ours, e.g. after an ADD refused for a name clash.
    """
    link = links.find_link(pod, ifname)
    if rec is None:
        return link if link is not None and link.alias else None
    if link is not None and (link.alias == rec.name or link.mac in _macs(rec)):
        return link
    return next((lk for lk in links.list_links(pod) if lk.alias == rec.name or lk.mac in _macs(rec)), None)


def _macs(rec: DeviceState) -> set[str]:
    """The MACs the device is known by: its own, and the one the plugin gave it in the pod."""
    return {mac for mac in (rec.mac, rec.pod_mac) if mac}


def find_orphan(host: Rtnl, rec: DeviceState, node_names: tuple[str, ...] = ()) -> links.Link | None:
    """The device back in the node under another name (its netns died).

    Known by a name in `node_names`, by alias, or by index and MAC.
    """
    if rec.mode != "netdev" or not rec.name:
        return None
    for name in node_names:
        link = links.find_link(host, name) if name != rec.name else None
        if link is not None:
            return link
    for link in links.list_links(host):
        if link.name != rec.name and (
            link.alias == rec.name or (link.index == rec.index and link.mac in _macs(rec))
        ):
            return link
    return None


def _restored(host: Rtnl, rec: DeviceState, node_names: tuple[str, ...] = ()) -> links.Link | None:
    """The device already under its original name (a DEL that stopped after the move)."""
    link = links.find_link(host, rec.name)
    if link is None:
        return None
    return link if rec.name in node_names or link.mac in _macs(rec) or link.index == rec.index else None


def reclaim_released(store: StateStore, host: Rtnl) -> None:
    """Orphans of finished attachments that have come back since their DEL: restore them now.

    Back under another name (the kernel keeps the pod-side one), or under its own (the node's
    naming rules renamed it as it reappeared) but still as the pod left it: either way it gets
    its recorded state back before anyone records its current one as original.
    """
    for rec in store.all():
        if not rec.released:
            continue
        orphan = find_orphan(host, rec) or _restored(host, rec)
        if orphan is not None:
            quietly(move.restore_in_place)(host, orphan, move.Restore.of(rec))
            if links.find_link(host, rec.name) is not None:
                store.remove(rec)
