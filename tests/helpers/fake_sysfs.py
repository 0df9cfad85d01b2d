"""A builder for fake sysfs trees: the stand-in for SR-IOV and PCI NIC hardware in tests.

The tree mirrors the kernel's layout exactly, so code reading it through `pycni.hw.sysfs.SysFs(root)`
cannot tell it from the real thing:

    devices/pci0000:00/<addr>/            real directory per PCI function
        vendor device class numa_node     files ("0x8086", "0x020000", "-1")
        driver -> ../../../bus/pci/drivers/<name>
        iommu_group -> ../../../kernel/iommu_groups/<N>
        physfn -> ../<pf>   virtfnN -> ../<vf>   sriov_numvfs sriov_totalvfs
        net/<if>/{operstate,address,type}, net/<if>/device -> ../../../<addr>
        uio/uioN/
    bus/pci/devices/<addr> -> ../../../devices/pci0000:00/<addr>
    bus/pci/drivers/<name>/<addr> -> ../../../../devices/pci0000:00/<addr>
    class/net/<if> -> ../../devices/pci0000:00/<addr>/net/<if>
    kernel/iommu_groups/<N>/devices/<addr> -> ../../../../devices/pci0000:00/<addr>
    bus/auxiliary/devices/<name> -> ../../../devices/pci0000:00/<addr>/<name>

Mutators (`remove_pci`, `bind`, `unbind`, `remove_netdev`, `rename_netdev`, `set_numvfs`) let tests
play hot-plug, driver rebinds, the kernel renaming a netdev, and `sriov_numvfs` changes. Everything
is created with plain files and relative symlinks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BRIDGE = "pci0000:00"


class FakeSysfs:
    """Builds and mutates a sysfs tree under `root` (which becomes the SysFs root)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in (
            "devices/" + BRIDGE,
            "bus/pci/devices",
            "bus/pci/drivers",
            "class/net",
            "kernel/iommu_groups",
            "bus/auxiliary/devices",
        ):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def dev_dir(self, address: str) -> Path:
        return self.root / "devices" / BRIDGE / address

    # -- PCI functions -------------------------------------------------------------------------
    def add_pci(
        self,
        address: str,
        *,
        vendor: str = "8086",
        device: str = "1572",
        class_code: int = 0x020000,
        driver: str | None = None,
        numa_node: int = -1,
        iommu_group: int | None = None,
        netdevs: Iterable[str] = (),
        totalvfs: int | None = None,
        operstate: str = "up",
    ) -> Path:
        """A PCI function; `totalvfs` makes it SR-IOV capable (with `sriov_numvfs` 0)."""
        path = self.dev_dir(address)
        path.mkdir(parents=True)
        _write(path / "vendor", f"0x{vendor}")
        _write(path / "device", f"0x{device}")
        _write(path / "class", f"0x{class_code:06x}")
        _write(path / "numa_node", str(numa_node))
        _link(self.root / "bus/pci/devices" / address, f"../../../devices/{BRIDGE}/{address}")
        if totalvfs is not None:
            _write(path / "sriov_totalvfs", str(totalvfs))
            _write(path / "sriov_numvfs", "0")
        if iommu_group is not None:
            group = self.root / "kernel/iommu_groups" / str(iommu_group)
            (group / "devices").mkdir(parents=True, exist_ok=True)
            _link(group / "devices" / address, f"../../../../devices/{BRIDGE}/{address}")
            _link(path / "iommu_group", f"../../../kernel/iommu_groups/{iommu_group}")
        if driver is not None:
            self.bind(address, driver)
        for ifname in netdevs:
            self.add_netdev(address, ifname, operstate=operstate)
        return path

    def remove_pci(self, address: str) -> None:
        """Hot-unplug: the device, its bus/driver/class links and its netdevs disappear."""
        path = self.dev_dir(address)
        for ifname in _ls(path / "net"):
            _unlink(self.root / "class/net" / ifname)
        self.unbind(address)
        _unlink(self.root / "bus/pci/devices" / address)
        for group in _ls(self.root / "kernel/iommu_groups"):
            _unlink(self.root / "kernel/iommu_groups" / group / "devices" / address)
        shutil.rmtree(path)

    def bind(self, address: str, driver: str) -> None:
        """(Re)bind to `driver`; a userspace driver takes the netdevs away as the kernel does."""
        self.unbind(address)
        drv = self.root / "bus/pci/drivers" / driver
        drv.mkdir(parents=True, exist_ok=True)
        _link(drv / address, f"../../../../devices/{BRIDGE}/{address}")
        _link(self.dev_dir(address) / "driver", f"../../../bus/pci/drivers/{driver}")

    def unbind(self, address: str) -> None:
        path = self.dev_dir(address)
        current = os.path.basename(os.readlink(path / "driver")) if (path / "driver").is_symlink() else None
        if current:
            _unlink(self.root / "bus/pci/drivers" / current / address)
            _unlink(path / "driver")

    def add_uio(self, address: str, name: str) -> None:
        (self.dev_dir(address) / "uio" / name).mkdir(parents=True)

    # -- netdevs -------------------------------------------------------------------------------
    def add_netdev(
        self, address: str, ifname: str, *, operstate: str = "up", mac: str | None = None, arphrd: int = 1
    ) -> None:
        net = self.dev_dir(address) / "net" / ifname
        net.mkdir(parents=True)
        _write(net / "operstate", operstate)
        _write(net / "address", mac or _mac_for(address))
        _write(net / "type", str(arphrd))
        _link(net / "device", f"../../../{address}")
        _link(self.root / "class/net" / ifname, f"../../devices/{BRIDGE}/{address}/net/{ifname}")

    def remove_netdev(self, address: str, ifname: str) -> None:
        _unlink(self.root / "class/net" / ifname)
        shutil.rmtree(self.dev_dir(address) / "net" / ifname)

    def rename_netdev(self, address: str, old: str, new: str) -> None:
        """What sysfs shows after `ip link set <old> name <new>`: the entry and its class link move."""
        (self.dev_dir(address) / "net" / old).rename(self.dev_dir(address) / "net" / new)
        _unlink(self.root / "class/net" / old)
        _link(self.root / "class/net" / new, f"../../devices/{BRIDGE}/{address}/net/{new}")

    def netdevs(self, address: str) -> list[str]:
        return _ls(self.dev_dir(address) / "net")

    def set_operstate(self, address: str, ifname: str, state: str) -> None:
        _write(self.dev_dir(address) / "net" / ifname / "operstate", state)

    # -- SR-IOV --------------------------------------------------------------------------------
    def add_vf(self, pf: str, index: int, address: str, **kwargs: object) -> Path:
        """A VF of `pf` at `address`, linked both ways; bumps the PF's `sriov_numvfs`."""
        path = self.add_pci(address, **kwargs)  # type: ignore[arg-type]
        _link(path / "physfn", f"../{pf}")
        _link(self.dev_dir(pf) / f"virtfn{index}", f"../{address}")
        self.set_numvfs(pf, len([n for n in _ls(self.dev_dir(pf)) if n.startswith("virtfn")]))
        return path

    def remove_vf(self, pf: str, index: int) -> None:
        link = self.dev_dir(pf) / f"virtfn{index}"
        self.remove_pci(os.path.basename(os.readlink(link)))
        _unlink(link)
        self.set_numvfs(pf, len([n for n in _ls(self.dev_dir(pf)) if n.startswith("virtfn")]))

    def set_numvfs(self, pf: str, count: int) -> None:
        _write(self.dev_dir(pf) / "sriov_numvfs", str(count))

    # -- auxiliary bus -------------------------------------------------------------------------
    def add_aux(self, parent: str, name: str, driver: str | None = None) -> None:
        (self.dev_dir(parent) / name).mkdir()
        _link(self.root / "bus/auxiliary/devices" / name, f"../../../devices/{BRIDGE}/{parent}/{name}")
        if driver:
            drv = self.root / "bus/auxiliary/drivers" / driver
            drv.mkdir(parents=True, exist_ok=True)
            _link(self.dev_dir(parent) / name / "driver", f"../../../../bus/auxiliary/drivers/{driver}")


@dataclass(frozen=True)
class FakeVf:
    address: str
    index: int
    pf: str
    pf_netdev: str
    driver: str
    netdev: str | None
    numa: int
    iommu_group: int

    @property
    def kernel_netdev(self) -> str:
        """The netdev of a VF bound to a kernel driver (a vfio-pci VF has none)."""
        assert self.netdev is not None, f"VF {self.address} has no netdev"
        return self.netdev


@dataclass
class FakeNode:
    """What `build_sriov_node` created: the tree plus an index of its PFs and VFs."""

    sysfs: FakeSysfs
    pfs: dict[str, str] = field(default_factory=dict)  # pf netdev -> pf address
    vfs: list[FakeVf] = field(default_factory=list)

    def vfs_of(self, pf_netdev: str) -> list[FakeVf]:
        return [vf for vf in self.vfs if vf.pf_netdev == pf_netdev]

    @property
    def netdevs(self) -> list[str]:
        return list(self.pfs) + [vf.netdev for vf in self.vfs if vf.netdev]


#: Per PF: netdev name, bus number, NUMA node, device id, and the driver of each VF by index.
DEFAULT_LAYOUT: tuple[tuple[str, int, int, str, tuple[str, ...]], ...] = (
    ("ens1f0", 0x3B, 0, "154c", ("iavf",) * 6 + ("vfio-pci",) * 2),
    ("ens1f1", 0x3C, 0, "154c", ("iavf",) * 8),
    ("ens2f0", 0x86, 1, "1018", ("mlx5_core",) * 4 + ("vfio-pci",) * 4),
    ("ens2f1", 0x87, 1, "1018", ("mlx5_core",) * 8),
)
_PF_DEVICE = {"154c": ("8086", "1572"), "1018": ("15b3", "1017")}


def build_sriov_node(
    root: Path,
    layout: Iterable[tuple[str, int, int, str, tuple[str, ...]]] = DEFAULT_LAYOUT,
    *,
    netdev_prefix: str = "",
) -> FakeNode:
    """A node with SR-IOV PFs and their VFs (default: 4 PFs x 8 VFs, two NUMA nodes, some vfio-pci).

    VF netdevs are named `<prefix><pf>v<N>` (kernel-driver VFs only); `netdev_prefix` keeps names unique
    when tests create veth stand-ins for them in parallel.
    """
    sysfs = FakeSysfs(root)
    node = FakeNode(sysfs)
    group = 100
    for pf_name, bus, numa, vf_device, drivers in layout:
        vendor, pf_device = _PF_DEVICE.get(vf_device, ("8086", "1572"))
        pf_addr = f"0000:{bus:02x}:00.0"
        pf_netdev = netdev_prefix + pf_name
        pf_driver = "mlx5_core" if vendor == "15b3" else "i40e"
        sysfs.add_pci(
            pf_addr,
            vendor=vendor,
            device=pf_device,
            driver=pf_driver,
            numa_node=numa,
            iommu_group=group,
            netdevs=[pf_netdev],
            totalvfs=64,
        )
        group += 1
        node.pfs[pf_netdev] = pf_addr
        for index, driver in enumerate(drivers):
            vf_addr = f"0000:{bus:02x}:{2 + index // 8:02x}.{index % 8}"
            netdev = None if driver == "vfio-pci" else f"{pf_netdev}v{index}"
            sysfs.add_vf(
                pf_addr,
                index,
                vf_addr,
                vendor=vendor,
                device=vf_device,
                driver=driver,
                numa_node=numa,
                iommu_group=group,
                netdevs=[netdev] if netdev else [],
            )
            node.vfs.append(FakeVf(vf_addr, index, pf_addr, pf_netdev, driver, netdev, numa, group))
            group += 1
    return node


def _write(path: Path, text: str) -> None:
    path.write_text(text + "\n")


def _link(path: Path, target: str) -> None:
    path.symlink_to(target)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _ls(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def _mac_for(address: str) -> str:
    digits = "".join(c for c in address if c.isalnum())[-10:].rjust(10, "0")
    return "02:" + ":".join(digits[i : i + 2] for i in range(0, 10, 2))
