"""What a container gets for its devices: env, DeviceSpecs or CDI names; and a pool's CDI spec.

Answers as sriov-network-device-plugin does: `PCIDEVICE_<PREFIX>_<RESOURCE>` (comma-joined PCI
addresses) with its `_INFO` JSON companion; `/dev/vfio/vfio` plus the IOMMU group node for vfio-pci,
`/dev/uioN` for uio drivers, nothing for a kernel-netdev VF (the CNI moves the netdev instead).
Device nodes come from sysfs facts (the IOMMU group), not from looking at `/dev`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from pycni.device_plugin.pools import Pool, matching_selector
from pycni.hw.devinfo import VHOST_NET
from pycni.hw.discovery import Device

VFIO_CONTAINER = "/dev/vfio/vfio"
UIO_DRIVERS = frozenset({"uio_pci_generic", "igb_uio"})
TUN = "/dev/net/tun"
CDI_CLASS = "net-pci"


@dataclass(frozen=True)
class DeviceNode:
    container_path: str
    host_path: str
    permissions: str = "rw"


@dataclass
class ContainerAllocation:
    envs: dict[str, str] = field(default_factory=dict)
    devices: list[DeviceNode] = field(default_factory=list)
    cdi_devices: list[str] = field(default_factory=list)


def env_name(pool: Pool) -> str:
    """`PCIDEVICE_<PREFIX>_<RESOURCE>`, upper-cased with `.` and `/` as `_` (reference spelling)."""
    return f"PCIDEVICE_{pool.prefix}_{pool.name}".upper().replace(".", "_").replace("/", "_")


def device_nodes(dev: Device, need_vhost_net: bool) -> list[DeviceNode]:
    nodes: list[DeviceNode] = []
    if dev.driver_now == "vfio-pci" and dev.iommu_group is not None:
        group = str(dev.iommu_group)
        host = f"/dev/vfio/noiommu-{group}" if dev.noiommu else f"/dev/vfio/{group}"
        nodes += [DeviceNode(VFIO_CONTAINER, VFIO_CONTAINER), DeviceNode(f"/dev/vfio/{group}", host)]
    elif dev.driver_now in UIO_DRIVERS:
        nodes += [DeviceNode(f"/dev/{uio}", f"/dev/{uio}") for uio in dev.uio]
    if need_vhost_net:
        nodes += [DeviceNode(VHOST_NET, VHOST_NET), DeviceNode(TUN, TUN)]
    return nodes


def info_entry(pool: Pool, dev: Device, need_vhost_net: bool) -> dict[str, object]:
    """One device's entry in the `_INFO` env (keys as in the reference's code, not its README)."""
    entry: dict[str, object] = {"generic": {"deviceID": dev.address}}
    for node in device_nodes(dev, False):
        if node.host_path == VFIO_CONTAINER:
            continue
        if dev.driver_now == "vfio-pci":
            entry["vfio"] = {"mount": VFIO_CONTAINER, "dev-mount": node.container_path}
        else:
            entry["uio"] = {"mount": node.container_path}
    if need_vhost_net:
        entry["vhost"] = {"net-mount": VHOST_NET, "tun-mount": TUN}
    extra = {**pool.conf.additional_info.get("*", {}), **pool.conf.additional_info.get(dev.address, {})}
    if extra:
        entry["extra"] = extra
    return entry


def allocate(pool: Pool, devices: Iterable[Device], use_cdi: bool = False) -> ContainerAllocation:
    """The response for one container; the caller has checked that every device is in the pool."""
    out = ContainerAllocation()
    info: dict[str, object] = {}
    seen: set[str] = set()
    ids = []
    for dev in devices:
        ids.append(dev.address)
        sel = matching_selector(pool.conf, dev)
        vhost = bool(sel and sel.need_vhost_net)
        info[dev.address] = info_entry(pool, dev, vhost)
        if use_cdi:
            out.cdi_devices.append(f"{pool.prefix}/{CDI_CLASS}={dev.address}")
            continue
        for node in device_nodes(dev, vhost):
            if node.host_path not in seen:
                seen.add(node.host_path)
                out.devices.append(node)
    name = env_name(pool)
    out.envs[name] = ",".join(ids)
    out.envs[f"{name}_INFO"] = json.dumps(info, sort_keys=True, separators=(",", ":"))
    return out


def cdi_spec(pool: Pool, devices: Iterable[Device]) -> dict[str, object]:
    """A CDI spec (kind `<prefix>/net-pci`, one device per PCI address) for container runtimes."""
    entries = []
    for dev in devices:
        sel = matching_selector(pool.conf, dev)
        nodes = device_nodes(dev, bool(sel and sel.need_vhost_net))
        edits: dict[str, object] = {"env": [f"{env_name(pool)}_{_env_safe(dev.address)}={dev.address}"]}
        if nodes:
            edits["deviceNodes"] = [
                {"path": n.container_path, "hostPath": n.host_path, "permissions": n.permissions}
                for n in nodes
            ]
        entries.append({"name": dev.address, "containerEdits": edits})
    return {"cdiVersion": "0.6.0", "kind": f"{pool.prefix}/{CDI_CLASS}", "devices": entries}


def _env_safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).upper()
