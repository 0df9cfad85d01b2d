"""Turning discovered devices into pools: selector matching, the first-match rule, and health.

Pure functions over `Device` records, so every rule here is tested without sysfs, netlink or gRPC.
The device plugin advertises each pool as an extended resource; the DRA driver publishes the same
devices in ResourceSlices, each carrying its pool's resource name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pycni.hw.discovery import Device
from pycni.hw.linkwatch import LinkState
from pycni.hw.sysfs import PCI_CLASS_ACCELERATOR, PCI_CLASS_NETWORK
from pycni.k8s.pools.config import PluginConfig, ResourceConfig, Selectors

_CLASS_OF = {"netDevice": PCI_CLASS_NETWORK, "accelerator": PCI_CLASS_ACCELERATOR}


@dataclass(frozen=True)
class Pool:
    """A resource advertised to the kubelet as `<prefix>/<name>`."""

    prefix: str
    name: str
    conf: ResourceConfig

    @property
    def resource(self) -> str:
        return f"{self.prefix}/{self.name}"

    @property
    def socket_name(self) -> str:
        return f"{self.prefix}_{self.name}.sock"


@dataclass(frozen=True)
class PoolDevice:
    device: Device
    unhealthy: str | None  # None when healthy, else why not

    @property
    def healthy(self) -> bool:
        return self.unhealthy is None


def pools_of(config: PluginConfig, default_prefix: str) -> list[Pool]:
    return [
        Pool(res.resource_prefix or default_prefix, res.resource_name, res) for res in config.resource_list
    ]


def selector_matches(sel: Selectors, dev: Device) -> bool:
    """True when every key set in `sel` admits `dev`; keys we cannot evaluate admit nothing."""
    if sel.unsupported():
        return False
    if sel.vendors and dev.vendor not in sel.vendors:
        return False
    if sel.devices and dev.device not in sel.devices:
        return False
    if sel.drivers and dev.driver not in sel.drivers:
        return False
    if sel.pci_addresses and dev.address not in sel.pci_addresses:
        return False
    if sel.acpi_indexes and str(dev.acpi_index) not in sel.acpi_indexes:
        return False
    if sel.pf_names and not _pf_name_matches(sel, dev):
        return False
    if sel.root_devices and not any(
        r.pf == dev.root_device and r.allows(dev.vf_index) for r in sel.root_refs()
    ):
        return False
    return not sel.link_types or (dev.link_type or "").lower() in {t.lower() for t in sel.link_types}


def _pf_name_matches(sel: Selectors, dev: Device) -> bool:
    name = (dev.pf_name or "").lower()
    return bool(name) and any(r.pf.lower() == name and r.allows(dev.vf_index) for r in sel.pf_refs())


def matching_selector(res: ResourceConfig, dev: Device) -> Selectors | None:
    """The first selector of `res` that takes `dev` (list order matters, as in the reference)."""
    if _CLASS_OF.get(res.device_type) != dev.base_class:
        return None
    return next((sel for sel in res.selectors if selector_matches(sel, dev)), None)


def assign(pools: list[Pool], devices: list[Device]) -> dict[str, list[Device]]:
    """resource name -> its devices; each device joins the first pool (in config order) that matches."""
    out: dict[str, list[Device]] = {pool.resource: [] for pool in pools}
    for dev in devices:
        for pool in pools:
            if matching_selector(pool.conf, dev) is not None:
                out[pool.resource].append(dev)
                break
    return out


def health(dev: Device, links: Mapping[str, LinkState] | None, in_use: bool = False) -> str | None:
    """Why `dev` cannot be used now, or None. `links` is the netlink view (None: unavailable).

    A netdev missing from the host is an outage unless the device is allocated: the CNI moves an
    allocated VF's netdev into the pod, and that must not make it Unhealthy. A VF netdev that is up
    without carrier has lost its link (its PF's, or its own `link-state disable`); one that is
    administratively down is merely unconfigured, as idle VFs on a node usually are.
    """
    if dev.driver_now is None:
        return "no driver bound"
    if dev.driver_now == "vfio-pci" and dev.iommu_group is None:
        return "vfio-pci device without an IOMMU group"
    if not in_use:
        for ifname in dev.netdevs:
            if ifname not in dev.netdevs_now or (links is not None and ifname not in links):
                return f"netdev {ifname} is gone"
            own = links.get(ifname) if links is not None else None
            if own is not None and own.up and not own.carrier:
                return f"netdev {ifname} is up without carrier"
    if dev.pf_address and dev.pf_netdevs and links is not None:
        pf = dev.pf_netdevs[0]
        state = links.get(pf)
        if state is None:
            return f"PF netdev {pf} is gone"
        if not (state.up and state.carrier):
            return f"PF {pf} has no carrier"
    return None
