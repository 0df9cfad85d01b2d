"""VF discovery through sysfs (`pycni.hw.sriov`), over the shared fake tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycni.hw.sriov import NotAVirtualFunction, UnusableVf, VirtualFunction, pf_problem, virtual_function
from pycni.hw.sysfs import DeviceNotFound, SysFs
from tests.helpers.fake_sysfs import FakeNode, build_sriov_node


@pytest.fixture
def tree(tmp_path: Path) -> FakeNode:
    return build_sriov_node(tmp_path / "sys")


def test_a_kernel_vf_and_a_vfio_vf(tree: FakeNode) -> None:
    sysfs = SysFs(tree.sysfs.root)
    assert virtual_function(sysfs, "0000:3b:02.5") == VirtualFunction(
        "0000:3b:02.5", "0000:3b:00.0", "ens1f0", 5, "iavf", ("ens1f0v5",)
    )
    vfio = virtual_function(sysfs, "0000:86:02.6")
    assert (vfio.pf_netdev, vfio.index, vfio.driver, vfio.netdev, vfio.userspace) == (
        "ens2f0", 6, "vfio-pci", None, True
    )  # fmt: skip


def test_every_vf_of_the_tree_is_found_as_built(tree: FakeNode) -> None:
    sysfs = SysFs(tree.sysfs.root)
    for vf in tree.vfs:
        found = virtual_function(sysfs, vf.address)
        assert (found.pf_address, found.pf_netdev, found.index, found.driver, found.netdev) == (
            vf.pf, vf.pf_netdev, vf.index, vf.driver, vf.netdev
        )  # fmt: skip


def test_what_cannot_be_attached_is_named(tree: FakeNode) -> None:
    sysfs = SysFs(tree.sysfs.root)
    with pytest.raises(DeviceNotFound, match=r"0000:99:00\.0 not found"):
        virtual_function(sysfs, "0000:99:00.0")
    with pytest.raises(NotAVirtualFunction, match=r"0000:3b:00\.0 is not an SR-IOV virtual function"):
        virtual_function(sysfs, "0000:3b:00.0")
    tree.sysfs.unbind("0000:3b:02.1")
    with pytest.raises(UnusableVf, match="not bound to any driver"):
        virtual_function(sysfs, "0000:3b:02.1")
    tree.sysfs.bind("0000:3b:02.1", "iavf")
    tree.sysfs.remove_netdev("0000:3b:02.1", "ens1f0v1")
    with pytest.raises(UnusableVf, match="neither a netdev in this network namespace nor a userspace driver"):
        virtual_function(sysfs, "0000:3b:02.1")
    assert virtual_function(sysfs, "0000:3b:02.1", need_netdev=False).netdevs == ()


def test_a_renamed_netdev_is_listed_under_its_new_name(tree: FakeNode) -> None:
    tree.sysfs.rename_netdev("0000:3b:02.2", "ens1f0v2", "net1")
    sysfs = SysFs(tree.sysfs.root)
    assert virtual_function(sysfs, "0000:3b:02.2").netdevs == ("net1",)
    assert sysfs.netdev_pci_address("net1") == "0000:3b:02.2"


def test_pf_problems(tree: FakeNode) -> None:
    sysfs = SysFs(tree.sysfs.root)
    assert pf_problem(sysfs, "0000:3c:02.0") is None
    assert "not an SR-IOV virtual function" in (pf_problem(sysfs, "0000:3c:00.0") or "")
    tree.sysfs.set_numvfs("0000:3c:00.0", 0)
    assert "has no VFs enabled" in (pf_problem(sysfs, "0000:3c:02.0") or "")
    tree.sysfs.remove_pci("0000:3c:00.0")
    assert pf_problem(sysfs, "0000:3c:02.0") == "PF 0000:3c:00.0 of VF 0000:3c:02.0 is gone"
    assert "does not exist" in (pf_problem(sysfs, "0000:3c:09.0") or "")
