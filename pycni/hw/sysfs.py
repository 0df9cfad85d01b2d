"""Read-only, typed access to the parts of sysfs that PCI network plugins need.

This is the project's only module that reads `/sys` for PCI and netdev facts; host-device, sriov and the
device plugin all go through it so the layout knowledge lives in one place. The root is injectable
(`SysFs(root)`, the root from the call's `Settings.sysfs_root`) so tests point it at a fake tree
that mirrors the kernel's layout. Standard library only, and nothing is read at import time.

Answers are frozen dataclasses or plain values; a missing optional attribute is `None`, a missing
device raises `DeviceNotFound`. Symlinks are resolved with `os.readlink` + basename, never followed
into the real `/sys`, so a fake tree stays self-contained. Names from configs and kubelet (PCI
addresses, netdev and auxiliary device names) are checked before they become paths: a PCI address
must be one, and no name may be `.`, `..` or hold a `/` or NUL, so no lookup leaves the root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pycni.cni.errors import InternalError, NotFound

DEFAULT_ROOT = Path("/sys")

#: Drivers that hand the device to userspace (DPDK and friends): no kernel netdev exists.
USERSPACE_DRIVERS = frozenset({"vfio-pci", "uio_pci_generic", "igb_uio"})

#: PCI base classes (the top byte of the 24-bit `class` value).
PCI_CLASS_NETWORK = 0x02
PCI_CLASS_ACCELERATOR = 0x12

#: ARPHRD values from `class/net/<if>/type`, named as `ip link` shows them.
LINK_TYPES: Mapping[int, str] = {1: "ether", 32: "infiniband", 772: "loopback", 65534: "none"}

#: A full PCI address (domain:bus:device.function), e.g. `0000:03:02.1`.
PCI_ADDRESS_PATTERN = r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$"
_PCI_ADDR = re.compile(PCI_ADDRESS_PATTERN)
_VIRTFN = re.compile(r"^virtfn(\d+)$")


class SysfsError(InternalError):
    """A sysfs read failed in a way the caller cannot treat as "attribute absent"."""


class DeviceNotFound(NotFound):
    """The PCI device, netdev or auxiliary device is not (or no longer) present."""


def is_pci_address(text: str) -> bool:
    """True for a full BDF such as `0000:03:02.1` (the whole string: no trailing newline)."""
    return _PCI_ADDR.fullmatch(text) is not None


def _component(name: str, what: str) -> str:
    """`name` as one path component below a sysfs directory, never a way out of it."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise DeviceNotFound(f"{what} {name!r} is not a device name")
    return name


@dataclass(frozen=True)
class PciDevice:
    """A snapshot of one PCI function's attributes."""

    address: str
    vendor: str
    device: str
    class_code: int
    driver: str | None
    numa_node: int | None
    iommu_group: int | None
    netdevs: tuple[str, ...]
    physfn: str | None
    vf_index: int | None
    sriov_numvfs: int | None
    sriov_totalvfs: int | None
    acpi_index: int | None = None
    uio: tuple[str, ...] = ()

    @property
    def base_class(self) -> int:
        return self.class_code >> 16


@dataclass(frozen=True)
class NetDev:
    """A kernel network interface as sysfs shows it in the reading process's network namespace."""

    name: str
    pci_address: str | None
    operstate: str | None
    mac: str | None
    link_type: str | None


@dataclass(frozen=True)
class AuxDevice:
    """A device on the auxiliary bus (e.g. `mlx5_core.sf.2`), with its PCI parent if it has one."""

    name: str
    parent_pci: str | None
    driver: str | None


class SysFs:
    """Reads one sysfs tree rooted at `root` (normally `/sys`)."""

    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"SysFs({str(self.root)!r})"

    # -- paths ---------------------------------------------------------------------------------
    def pci_path(self, address: str) -> Path:
        """The device's directory; `DeviceNotFound` for anything that is not a PCI address."""
        if not is_pci_address(address):
            raise DeviceNotFound(f"{address!r} is not a PCI address such as '0000:03:02.1'")
        return self.root / "bus" / "pci" / "devices" / address

    def net_path(self, ifname: str) -> Path:
        return self.root / "class" / "net" / _component(ifname, "netdev")

    def _existing_pci(self, address: str) -> Path:
        path = self.pci_path(address)
        if not path.exists():
            raise DeviceNotFound(f"PCI device {address} not found under {self.root}")
        return path

    # -- PCI enumeration -----------------------------------------------------------------------
    def pci_addresses(self) -> list[str]:
        """Every PCI function on the bus, sorted by address."""
        try:
            names = os.listdir(self.root / "bus" / "pci" / "devices")
        except FileNotFoundError:
            return []
        return sorted(n for n in names if is_pci_address(n))

    def exists(self, address: str) -> bool:
        return is_pci_address(address) and self.pci_path(address).exists()

    def pci_bus_readable(self) -> bool:
        """Whether the PCI device list can be read at all (a plugin's STATUS with no device to name)."""
        devices = self.root / "bus" / "pci" / "devices"
        return devices.is_dir() and os.access(devices, os.R_OK | os.X_OK)

    def pci_device(self, address: str, *, resolve_vf_index: bool = True) -> PciDevice:
        """All attributes of one device; raises DeviceNotFound if it is gone.

        Lists the device directory once and reads only what exists, since discovery calls this for
        every function on the bus. Finding a VF's index scans its PF's `virtfnN` links; a caller
        walking every device can skip that (`resolve_vf_index=False`, `vf_index` is then None) and
        use `virtfns(pf)` once per PF.
        """
        base = str(self.pci_path(address))
        try:
            names = frozenset(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            raise DeviceNotFound(f"PCI device {address} not found under {self.root}") from None

        def attr(name: str) -> str | None:
            return _read(os.path.join(base, name)) if name in names else None

        def link(name: str) -> str | None:
            return _link_name(os.path.join(base, name)) if name in names else None

        physfn = link("physfn")
        return PciDevice(
            address=address,
            vendor=_hex_id(attr("vendor")),
            device=_hex_id(attr("device")),
            class_code=_int(attr("class"), 16) or 0,
            driver=link("driver"),
            numa_node=_numa(attr("numa_node")),
            iommu_group=_int(link("iommu_group")),
            netdevs=_netdevs(base, names),
            physfn=physfn,
            vf_index=self.vf_index(address) if physfn and resolve_vf_index else None,
            sriov_numvfs=_int(attr("sriov_numvfs")),
            sriov_totalvfs=_int(attr("sriov_totalvfs")),
            acpi_index=_int(attr("acpi_index")),
            uio=_listdir(os.path.join(base, "uio")) if "uio" in names else (),
        )

    def vendor(self, address: str) -> str:
        return _hex_id(_read(self._existing_pci(address) / "vendor"))

    def device_id(self, address: str) -> str:
        return _hex_id(_read(self._existing_pci(address) / "device"))

    def driver(self, address: str) -> str | None:
        """The bound driver's name, or None when the device is unbound."""
        return _link_name(self._existing_pci(address) / "driver")

    def is_userspace_driver(self, address: str) -> bool:
        return self.driver(address) in USERSPACE_DRIVERS

    def numa_node(self, address: str) -> int | None:
        """The NUMA node, or None where the kernel reports -1 (no affinity)."""
        return _numa(_read(self._existing_pci(address) / "numa_node"))

    def iommu_group(self, address: str) -> int | None:
        return _int(_link_name(self._existing_pci(address) / "iommu_group"))

    def iommu_group_is_noiommu(self, group: int) -> bool:
        """True for groups made by `vfio enable_unsafe_noiommu_mode` (device node `noiommu-N`)."""
        return _read(self.root / "kernel" / "iommu_groups" / str(group) / "name") == "vfio-noiommu"

    def acpi_index(self, address: str) -> int | None:
        return _int(_read(self._existing_pci(address) / "acpi_index"))

    def netdevs(self, address: str) -> tuple[str, ...]:
        """Netdev names of the device, including those behind a virtio child (`virtioN/net/`)."""
        path = str(self._existing_pci(address))
        return _netdevs(path, frozenset(_listdir(path)))

    # -- SR-IOV --------------------------------------------------------------------------------
    def physfn(self, address: str) -> str | None:
        """The PF's address when `address` is a VF."""
        return _link_name(self._existing_pci(address) / "physfn")

    def virtfns(self, pf_address: str) -> dict[int, str]:
        """VF index -> VF address, from the PF's `virtfnN` links."""
        path = self._existing_pci(pf_address)
        out: dict[int, str] = {}
        for name in _listdir(path):
            match = _VIRTFN.match(name)
            target = _link_name(path / name) if match else None
            if match and target:
                out[int(match.group(1))] = target
        return dict(sorted(out.items()))

    def vf_index(self, address: str) -> int | None:
        """The VF's index on its PF (N of the PF's `virtfnN` pointing at it)."""
        pf = self.physfn(address)
        if pf is None or not self.exists(pf):
            return None
        for index, vf in self.virtfns(pf).items():
            if vf == address:
                return index
        return None

    def sriov_numvfs(self, address: str) -> int | None:
        return _int(_read(self._existing_pci(address) / "sriov_numvfs"))

    def sriov_totalvfs(self, address: str) -> int | None:
        return _int(_read(self._existing_pci(address) / "sriov_totalvfs"))

    # -- netdevs -------------------------------------------------------------------------------
    def netdev_pci_address(self, ifname: str) -> str | None:
        """The PCI address behind a netdev (`class/net/<if>/device`), walking up past virtio."""
        target = self._resolve(self.net_path(ifname) / "device")
        root = Path(os.path.realpath(self.root))
        while target is not None and target not in (root, target.parent):
            if is_pci_address(target.name):
                return target.name
            target = target.parent
        return None

    def link_type(self, ifname: str) -> str | None:
        """`ether`, `infiniband`, ... from `class/net/<if>/type` (None when the netdev is absent)."""
        kind = _int(_read(self.net_path(ifname) / "type"))
        return None if kind is None else LINK_TYPES.get(kind, str(kind))

    def operstate(self, ifname: str) -> str | None:
        return _read(self.net_path(ifname) / "operstate")

    def netdev(self, ifname: str) -> NetDev:
        path = self.net_path(ifname)
        if not path.exists():
            raise DeviceNotFound(f"netdev {ifname} not found under {self.root}")
        kind = _int(_read(path / "type"))
        return NetDev(
            name=ifname,
            pci_address=self.netdev_pci_address(ifname),
            operstate=_read(path / "operstate"),
            mac=_read(path / "address"),
            link_type=None if kind is None else LINK_TYPES.get(kind, str(kind)),
        )

    # -- auxiliary bus -------------------------------------------------------------------------
    def auxiliary_devices(self, parent_pci: str | None = None) -> tuple[AuxDevice, ...]:
        """Auxiliary devices (sub-functions and the like), optionally only those of one PCI parent."""
        base = self.root / "bus" / "auxiliary" / "devices"
        out = []
        for name in _listdir(base):
            resolved = self._resolve(base / name)
            parent = resolved.parent.name if resolved is not None else None
            parent = parent if parent and is_pci_address(parent) else None
            if parent_pci is None or parent == parent_pci:
                out.append(AuxDevice(name, parent, _link_name(base / name / "driver")))
        return tuple(out)

    def auxiliary_netdevs(self, name: str) -> tuple[str, ...]:
        """Netdevs of the auxiliary device `name` (an SF's `net/<ifname>`)."""
        return _listdir(
            self.root / "bus" / "auxiliary" / "devices" / _component(name, "auxiliary device") / "net"
        )

    def kernel_path_netdevs(self, kernel_path: str) -> tuple[str, ...] | None:
        """Netdevs under a `/sys/devices/...` path as the host names it; None when no such device.

        The path is read below `root`, and may not climb out of `root/devices` with `..`.
        """
        prefix = "/sys/devices/"
        if not kernel_path.startswith(prefix) or "\0" in kernel_path:
            return None
        devices = (self.root / "devices").resolve()
        device = (devices / kernel_path[len(prefix) :]).resolve()
        if not device.is_relative_to(devices) or not device.is_dir():
            return None
        return _listdir(device / "net")

    def _resolve(self, link: Path) -> Path | None:
        """Where a link leads; sysfs links are relative, so a fake tree resolves inside itself."""
        if not os.path.lexists(link):
            return None
        return Path(os.path.realpath(link))


def _netdevs(base: str, names: frozenset[str]) -> tuple[str, ...]:
    found = list(_listdir(os.path.join(base, "net"))) if "net" in names else []
    for child in names:
        if child.startswith("virtio"):
            found.extend(_listdir(os.path.join(base, child, "net")))
    return tuple(sorted(found))


def _read(path: str | Path) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise SysfsError(f"cannot read {path}: {err.strerror}") from err


def _listdir(path: str | Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(path)))
    except (FileNotFoundError, NotADirectoryError):
        return ()


def _link_name(path: str | Path) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return None


def _int(text: str | None, base: int = 10) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _numa(text: str | None) -> int | None:
    value = _int(text)
    return None if value is None or value < 0 else value


def _hex_id(text: str | None) -> str:
    """`0x8086` -> `8086` (the form config selectors use)."""
    if not text:
        return ""
    return text.lower().removeprefix("0x")
