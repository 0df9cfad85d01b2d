"""sysfs lookups by kernel path and for auxiliary devices, over a fake tree (no hardware here)."""

from __future__ import annotations

from pathlib import Path

from pycni.hw.sysfs import SysFs
from tests.helpers.fake_sysfs import BRIDGE, FakeSysfs


def test_kernel_path_netdevs_are_read_below_the_root(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_pci("0000:03:00.0", driver="ixgbe")
    fake.add_netdev("0000:03:00.0", "ens3f0")
    sysfs = SysFs(tmp_path)
    assert sysfs.kernel_path_netdevs(f"/sys/devices/{BRIDGE}/0000:03:00.0") == ("ens3f0",)
    assert sysfs.kernel_path_netdevs(f"/sys/devices/{BRIDGE}/0000:09:00.0") is None
    assert sysfs.kernel_path_netdevs("/etc/passwd") is None


def test_kernel_path_cannot_climb_out_of_the_devices_tree(tmp_path: Path) -> None:
    FakeSysfs(tmp_path)
    (tmp_path / "outside" / "net" / "evil0").mkdir(parents=True)
    sysfs = SysFs(tmp_path)
    assert sysfs.kernel_path_netdevs("/sys/devices/../outside") is None


def test_auxiliary_netdevs(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path)
    fake.add_pci("0000:03:00.0", driver="mlx5_core")
    fake.add_aux("0000:03:00.0", "mlx5_core.sf.2", driver="mlx5_core.sf")
    (fake.dev_dir("0000:03:00.0") / "mlx5_core.sf.2" / "net" / "enp3s0f0s2").mkdir(parents=True)
    sysfs = SysFs(tmp_path)
    assert sysfs.auxiliary_netdevs("mlx5_core.sf.2") == ("enp3s0f0s2",)
    assert sysfs.auxiliary_netdevs("mlx5_core.sf.9") == ()
