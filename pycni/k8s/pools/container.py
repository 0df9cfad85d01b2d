"""What a container gets for a device of a pool, as sriov-network-device-plugin gives it: the env name
`PCIDEVICE_<PREFIX>_<RESOURCE>`, the `_INFO` entry of a device, and its device nodes
(`/dev/vfio/vfio` plus the IOMMU group node for vfio-pci, `/dev/uioN` for uio drivers, nothing for a
kernel-netdev VF, whose netdev the CNI moves instead). Device nodes come from sysfs facts (the
IOMMU group), not from looking at `/dev`. The device plugin answers Allocate with these; the DRA
driver writes them into CDI specs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycni.hw.devinfo import VHOST_NET
from pycni.hw.discovery import Device
from pycni.k8s.pools.membership import Pool

VFIO_CONTAINER = "/dev/vfio/vfio"
UIO_DRIVERS = frozenset({"uio_pci_generic", "igb_uio"})
TUN = "/dev/net/tun"


@dataclass(frozen=True)
class DeviceNode:
    container_path: str
    host_path: str
    permissions: str = "rw"


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
