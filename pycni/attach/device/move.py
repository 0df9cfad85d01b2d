"""Moving a device into a pod and back, always through a fresh temporary netns.

Renaming in a netns of our own means udev and NetworkManager never see a transient name, and a
name taken in either the node or the pod cannot clash halfway (plugins PR#1002). Into the pod:
down, to temp, drop altnames, rename to CNI_IFNAME, alias = original name, to the pod. Back: to
temp, rename to the original name, to the node, then put back alias, altnames, MTU, MAC and the
admin state exactly as recorded. Altnames are dropped on the way in because they are node names:
they would clash with names in the pod and could not come back if the netns died.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycni.attach.device.record import DeviceState
from pycni.cni.errors import InternalError
from pycni.cni.rollback import quietly
from pycni.net import links, netns

if TYPE_CHECKING:
    from pycni.net.nlsock import Rtnl


@dataclass(frozen=True)
class Restore:
    """How the device must look in the node netns; zero/empty fields are left as found."""

    name: str
    alias: str = ""
    altnames: tuple[str, ...] = ()
    mtu: int = 0
    mac: str = ""
    up: bool = False

    @classmethod
    def of(cls, rec: DeviceState) -> Restore:
        return cls(rec.name, rec.alias, rec.altnames, rec.mtu, rec.mac, rec.up)


def move_in(host: Rtnl, link: links.Link, pod_fd: int, ifname: str, node_fd: int) -> None:
    """Node -> temp -> pod under `ifname`; on failure the device is back in the node as it was."""
    restore = Restore(link.name, link.alias, link.altnames, up=link.up)
    if link.up:
        links.set_down(host, link)
    try:
        with netns.temporary() as tmp_fd, netns.rtnl(tmp_fd) as tmp:
            links.move_link(host, link, tmp_fd)
            try:
                moved = links.get_link(tmp, link.name)
                for altname in moved.altnames:
                    links.del_altname(tmp, moved, altname)
                links.rename_link(tmp, moved, ifname)
                links.set_alias(tmp, moved, link.name)
                links.move_link(tmp, moved, pod_fd)
            except BaseException:
                quietly(_temp_to)(tmp, restore.name, node_fd)
                raise
    except BaseException:
        quietly(restore_attrs)(host, restore)
        raise


def move_into_pod(host: Rtnl, link: links.Link, pod_path: str, ifname: str) -> None:
    """`move_in` to the netns at `pod_path`, from the calling thread's netns (the node's)."""
    pod_fd = netns.open_netns(pod_path)
    try:
        with netns.own_fd() as node_fd:
            move_in(host, link, pod_fd, ifname, node_fd)
    finally:
        os.close(pod_fd)


def move_out(src: Rtnl, src_fd: int, link: links.Link, host: Rtnl, node_fd: int, restore: Restore) -> None:
    """Pod -> temp -> node under the original name, then the recorded attributes.

    If the last move fails the device goes back to the pod as it was, so a retried DEL finds it.
    """
    if links.find_link(host, restore.name) is not None:
        raise InternalError(f"cannot return {link.name} to the node as {restore.name!r}: that name is taken")
    links.set_down(src, link)
    with netns.temporary() as tmp_fd, netns.rtnl(tmp_fd) as tmp:
        links.move_link(src, link, tmp_fd)
        try:
            _temp_to(tmp, restore.name, node_fd)
        except BaseException:
            quietly(_temp_to)(tmp, link.name, src_fd)
            raise
    restore_attrs(host, restore)


def restore_in_place(host: Rtnl, link: links.Link, restore: Restore) -> None:
    """An orphan already in the node netns (its pod's netns died): give it its name back."""
    if link.name != restore.name:
        taken = links.find_link(host, restore.name)
        if taken is not None:
            raise InternalError(
                f"cannot rename orphan {link.name} back to {restore.name!r}: the name is taken"
            )
        links.set_down(host, link)
        links.rename_link(host, link, restore.name)
    restore_attrs(host, restore)


def restore_attrs(host: Rtnl, restore: Restore) -> None:
    """Alias, altnames, MTU, MAC and admin state as recorded (the reference leaves it down)."""
    link = links.get_link(host, restore.name)
    if link.alias != restore.alias:
        links.set_alias(host, link, restore.alias)
    for altname in restore.altnames:
        if altname not in link.altnames:
            links.add_altname(host, link, altname)
    if restore.mtu and link.mtu != restore.mtu:
        links.set_link(host, link, mtu=restore.mtu)
    if restore.mac and link.mac != restore.mac:
        links.set_link(host, link, address=restore.mac)
    if restore.up and not link.up:
        links.set_up(host, link)
    elif not restore.up and link.up:
        links.set_down(host, link)


def _temp_to(tmp: Rtnl, name: str, target_fd: int) -> None:
    """The one device in the temp netns, renamed to `name` and moved to the netns `target_fd`."""
    moved = _single_link(tmp)
    if moved.name != name:
        links.rename_link(tmp, moved, name)
        moved = links.get_link(tmp, name)
    links.move_link(tmp, moved, target_fd)


def _single_link(tmp: Rtnl) -> links.Link:
    found = [lk for lk in links.list_links(tmp) if lk.name != "lo"]
    if len(found) != 1:
        raise InternalError(f"expected one device in the temporary netns, found {[lk.name for lk in found]}")
    return found[0]
