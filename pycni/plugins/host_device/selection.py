"""Finding the device a config names, in the node netns, and telling whether it is free.

Netlink answers for names and MACs; sysfs (through `SysFs`, rooted at the settings' sysfs root) maps a
kernel path, PCI address or auxiliary device to its netdev, and says whether a PCI device is
bound to a userspace driver (DPDK: no netdev at all). A netdev listed by sysfs but absent from the
node netns has been moved away; who took it is the claim records' business (`holder`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycni.attach.device.record import DeviceState
from pycni.cni.errors import PluginError
from pycni.hw.sysfs import DeviceNotFound, SysFs
from pycni.net import links
from pycni.plugins.host_device.config import HostDeviceConf

if TYPE_CHECKING:
    from pycni.net.nlsock import Rtnl


class DeviceInUse(PluginError):
    """The device is held by another attachment (or is its orphan, not yet restored)."""


@dataclass(frozen=True)
class Target:
    """The selected device: a netdev in the node netns, or a userspace-bound PCI function."""

    selector: str
    link: links.Link | None
    pci_address: str | None = None
    pf_address: str | None = None

    @property
    def userspace(self) -> bool:
        return self.link is None


def selector(conf: HostDeviceConf) -> str:
    """The selector as `key=value`, recorded in state and quoted in errors."""
    for key, value in (("device", conf.device), ("hwaddr", conf.hwaddr), ("kernelpath", conf.kernelpath)):
        if value:
            return f"{key}={value}"
    return f"deviceID={conf.device_id}"


def find(conf: HostDeviceConf, host: Rtnl, sysfs: SysFs) -> Target | None:
    """The device the config names, or None if it names one that is not in the node netns."""
    sel = selector(conf)
    if conf.device:
        return _netdev(sel, host, [conf.device])
    if conf.hwaddr:
        link = next((lk for lk in links.list_links(host) if lk.mac == conf.hwaddr and lk.name != "lo"), None)
        return Target(sel, link) if link else None
    if conf.kernelpath:
        return _netdev(sel, host, _kernelpath_netdevs(sysfs, conf.kernelpath))
    assert conf.device_id is not None
    return _by_device_id(sel, conf.device_id, host, sysfs)


def _netdev(
    sel: str, host: Rtnl, names: list[str] | tuple[str, ...], pci: str | None = None, pf: str | None = None
) -> Target | None:
    """The first of `names` present in the node netns."""
    for name in names:
        link = links.find_link(host, name)
        if link is not None:
            return Target(sel, link, pci, pf)
    return None


def _by_device_id(sel: str, device_id: str, host: Rtnl, sysfs: SysFs) -> Target | None:
    """A PCI address (netdev, or userspace driver) or, failing that, an auxiliary device."""
    if sysfs.exists(device_id):
        pf = sysfs.physfn(device_id)
        if sysfs.is_userspace_driver(device_id):
            return Target(sel, None, device_id, pf)
        return _netdev(sel, host, sysfs.netdevs(device_id), device_id, pf)
    if any(aux.name == device_id for aux in sysfs.auxiliary_devices()):
        return _netdev(sel, host, sysfs.auxiliary_netdevs(device_id))
    raise DeviceNotFound(f"{device_id} is neither a PCI nor an auxiliary device (sysfs at {sysfs.root})")


def _kernelpath_netdevs(sysfs: SysFs, kernelpath: str) -> tuple[str, ...]:
    netdevs = sysfs.kernel_path_netdevs(kernelpath)
    if netdevs is None:
        raise DeviceNotFound(f"kernel path {kernelpath} does not exist (sysfs at {sysfs.root})")
    return netdevs


def holder(
    records: list[DeviceState], target: Target | None, sel: str, me: tuple[str, str, str]
) -> DeviceState | None:
    """The live record of another attachment that holds the selected device, if any."""
    for rec in records:
        if rec.released or rec.key == me:
            continue
        if rec.selector == sel or _same_device(rec, target, sel):
            return rec
    return None


def _same_device(rec: DeviceState, target: Target | None, sel: str) -> bool:
    key, _, value = sel.partition("=")
    if target is None:
        return (
            (key == "device" and rec.name == value)
            or (key == "hwaddr" and rec.mac == value)
            or (key == "deviceID" and rec.pci_address == value)
        )
    if target.link is None:
        return rec.pci_address == target.pci_address
    return rec.mode == "netdev" and rec.index == target.link.index and rec.mac == target.link.mac


def in_use_message(rec: DeviceState, sel: str) -> str:
    where = f"its netns {rec.netns}" if rec.netns else "a pod"
    return f"device selected by {sel} is already in use by {rec.describe()} in {where}"
