"""Finds the PCI devices the node could advertise, through `pycni.hw.sysfs` only.

A discovery pass is a pure read of sysfs: network (class 0x02) and accelerator (0x12) functions,
minus SR-IOV PFs that have VFs enabled and minus devices carrying the node's default route (both
would be disastrous to hand to a pod). Facts that an allocation or a transient state can take away
(the bound driver, the netdev, which moves into the pod's netns) are made sticky by `remember`, so a
VF in use keeps its pool and a VF whose netdev vanished stays listed (as Unhealthy).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pycni.hw.sysfs import PCI_CLASS_ACCELERATOR, PCI_CLASS_NETWORK, DeviceNotFound, SysFs, SysfsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Device:
    """One candidate device. `driver`/`netdevs` may be remembered; `*_now` are what sysfs shows now."""

    address: str
    vendor: str
    device: str
    base_class: int
    driver: str | None
    netdevs: tuple[str, ...]
    numa_node: int | None
    iommu_group: int | None
    noiommu: bool
    pf_address: str | None
    pf_netdevs: tuple[str, ...]
    vf_index: int | None
    link_type: str | None
    acpi_index: int | None
    uio: tuple[str, ...]
    driver_now: str | None
    netdevs_now: tuple[str, ...]

    @property
    def pf_name(self) -> str | None:
        """The PF netdev a `pfNames` selector compares with: the PF's for a VF, its own otherwise."""
        names = self.pf_netdevs if self.pf_address else self.netdevs
        return names[0] if names else None

    @property
    def root_device(self) -> str:
        """The PCI address a `rootDevices` selector compares with."""
        return self.pf_address or self.address


def discover(sysfs: SysFs, exclude_netdevs: Iterable[str] = ()) -> list[Device]:
    """All advertisable devices, sorted by address. `exclude_netdevs`: the default-route links."""
    excluded = set(exclude_netdevs)
    vf_indexes: dict[str, int] = {}
    pf_netdevs: dict[str, tuple[str, ...]] = {}
    found: list[Device] = []
    for address in sysfs.pci_addresses():
        try:
            dev = _read_device(sysfs, address, vf_indexes, pf_netdevs)
        except DeviceNotFound:
            continue  # removed while we were reading: the next pass will settle it
        except SysfsError as err:
            log.warning("skipping unreadable device", extra={"pci": address, "error": str(err)})
            continue
        if dev is None:
            continue
        if excluded.intersection(dev.netdevs_now):
            log.debug("skipping default-route device", extra={"pci": address})
            continue
        found.append(dev)
    return found


def _read_device(
    sysfs: SysFs, address: str, vf_indexes: dict[str, int], pf_netdevs: dict[str, tuple[str, ...]]
) -> Device | None:
    pci = sysfs.pci_device(address, resolve_vf_index=False)
    base_class = pci.base_class
    if base_class not in (PCI_CLASS_NETWORK, PCI_CLASS_ACCELERATOR):
        return None
    if (pci.sriov_numvfs or 0) > 0:
        return None  # a PF with VFs enabled: its VFs are the resources
    vf_index = None
    pf_names: tuple[str, ...] = ()
    if pci.physfn:
        if pci.physfn not in pf_netdevs:
            pf_netdevs[pci.physfn] = sysfs.netdevs(pci.physfn) if sysfs.exists(pci.physfn) else ()
            vf_indexes.update({vf: i for i, vf in sysfs.virtfns(pci.physfn).items()})
        vf_index = vf_indexes.get(address)
        pf_names = pf_netdevs[pci.physfn]
    link_owner = pci.netdevs[0] if pci.netdevs else (pf_names[0] if pf_names else None)
    noiommu = (
        pci.driver == "vfio-pci"
        and pci.iommu_group is not None
        and sysfs.iommu_group_is_noiommu(pci.iommu_group)
    )
    return Device(
        address=address,
        vendor=pci.vendor,
        device=pci.device,
        base_class=base_class,
        driver=pci.driver,
        netdevs=pci.netdevs,
        numa_node=pci.numa_node,
        iommu_group=pci.iommu_group,
        noiommu=noiommu,
        pf_address=pci.physfn,
        pf_netdevs=pf_names,
        vf_index=vf_index,
        link_type=sysfs.link_type(link_owner) if link_owner else None,
        acpi_index=pci.acpi_index,
        uio=pci.uio,
        driver_now=pci.driver,
        netdevs_now=pci.netdevs,
    )


def with_netdevs_now(sysfs: SysFs, dev: Device) -> Device:
    """`dev` with the netdevs sysfs shows now: the cheap re-read after link events, no rediscovery."""
    if not dev.netdevs:
        return dev
    try:
        return dataclasses.replace(dev, netdevs_now=sysfs.netdevs(dev.address))
    except SysfsError:
        return dataclasses.replace(dev, netdevs_now=())


def remember(devices: list[Device], previous: Mapping[str, Device]) -> list[Device]:
    """Fills a driver or netdevs that vanished since the last pass from what we knew then.

    A driver *change* (rebind to vfio-pci) is taken as the new truth; only absence is papered over,
    so pool membership follows rebinds but not allocations or outages.
    """
    out = []
    for dev in devices:
        before = previous.get(dev.address)
        if before is not None:
            changes: dict[str, object] = {}
            if dev.driver is None and before.driver is not None:
                changes["driver"] = before.driver
            same_driver = (changes.get("driver") or dev.driver) == before.driver
            if not dev.netdevs and before.netdevs and same_driver:
                changes["netdevs"] = before.netdevs
                if dev.link_type is None:
                    changes["link_type"] = before.link_type
            if changes:
                out.append(dataclasses.replace(dev, **changes))  # type: ignore[arg-type]
                continue
        out.append(dev)
    return out
