"""SR-IOV virtual functions as sysfs describes them: PF, index, driver, netdev.

Given a VF's PCI address (the `deviceID` a device plugin allocated), `virtual_function` answers
everything a plugin needs before touching it, through `SysFs` only:
- the PF: `<vf>/physfn` -> its address; its netdev from `<pf>/net/`;
- the index: the N of the PF's `virtfnN` link that points at the VF;
- the driver: `<vf>/driver`; a userspace one (vfio-pci, uio_pci_generic, igb_uio) means no netdev;
- the netdev: `<vf>/net/` (the name sysfs shows in the reader's netns, so a VF the kernel put back
  under its pod-side name is listed under that name).
It refuses clearly what cannot be attached: an unknown address, a PF or plain NIC, a VF with no
driver (sriov-network-operator#443: a workload unbound it), a kernel-driver VF without a netdev.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycni.cni.errors import PluginError
from pycni.hw.sysfs import USERSPACE_DRIVERS, DeviceNotFound, SysFs


class NotAVirtualFunction(PluginError):
    """The PCI device exists but is not a VF (a PF, or a NIC without SR-IOV)."""


class UnusableVf(PluginError):
    """The VF exists but cannot be handed to a pod as it is (no driver, no netdev, no PF netdev)."""


@dataclass(frozen=True)
class VirtualFunction:
    """One VF of an SR-IOV PF, as sysfs shows it now."""

    address: str
    pf_address: str
    pf_netdev: str
    index: int
    driver: str
    netdevs: tuple[str, ...]

    @property
    def userspace(self) -> bool:
        """Bound to a userspace driver (DPDK/VFIO): it has no netdev and is handed over by reference."""
        return self.driver in USERSPACE_DRIVERS

    @property
    def netdev(self) -> str | None:
        return self.netdevs[0] if self.netdevs else None


def virtual_function(sysfs: SysFs, address: str, *, need_netdev: bool = True) -> VirtualFunction:
    """The VF at `address`, or an error naming why it cannot be used.

    `need_netdev=False` accepts a kernel-driver VF whose netdev is not visible (it is in a pod),
    for callers that look for it elsewhere.
    """
    if not sysfs.exists(address):
        raise DeviceNotFound(f"PCI device {address} not found (sysfs at {sysfs.root})")
    pci = sysfs.pci_device(address)
    if pci.physfn is None:
        raise NotAVirtualFunction(f"PCI device {address} is not an SR-IOV virtual function (no physfn link)")
    if pci.vf_index is None:
        raise NotAVirtualFunction(f"PCI device {address} is not listed among the VFs of its PF {pci.physfn}")
    pf_netdevs = sysfs.netdevs(pci.physfn) if sysfs.exists(pci.physfn) else ()
    if not pf_netdevs:
        raise UnusableVf(f"the PF {pci.physfn} of VF {address} has no netdev to program the VF through")
    if pci.driver is None:
        raise UnusableVf(f"VF {address} is not bound to any driver: bind it to its VF driver or to vfio-pci")
    vf = VirtualFunction(address, pci.physfn, pf_netdevs[0], pci.vf_index, pci.driver, pci.netdevs)
    if need_netdev and not vf.userspace and not vf.netdevs:
        raise UnusableVf(
            f"VF {address} has neither a netdev in this network namespace nor a userspace driver "
            f"(driver {pci.driver})"
        )
    return vf


def pf_problem(sysfs: SysFs, vf_address: str) -> str | None:
    """Why the PF of `vf_address` cannot serve it now (gone, or no VFs enabled); None when it can."""
    if not sysfs.exists(vf_address):
        return f"VF {vf_address} does not exist: its PF is gone or has SR-IOV disabled"
    pf = sysfs.physfn(vf_address)
    if pf is None:
        return f"PCI device {vf_address} is not an SR-IOV virtual function"
    if not sysfs.exists(pf):
        return f"PF {pf} of VF {vf_address} is gone"
    if not sysfs.sriov_numvfs(pf):
        return f"PF {pf} of VF {vf_address} has no VFs enabled (sriov_numvfs is 0)"
    if not sysfs.netdevs(pf):
        return f"PF {pf} of VF {vf_address} has no netdev"
    return None
