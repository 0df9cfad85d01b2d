"""PCI selection against a fake sysfs tree (`PYCNI_SYSFS_ROOT`), veth stand-ins as the netdevs.

The tree mirrors the kernel's layout (`bus/pci/devices/<addr>/net/<ifname>`, `driver` link), so
the plugin cannot tell it from /sys; the netdev it names is a real veth in the node netns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.fake_sysfs import BRIDGE, FakeSysfs
from tests.helpers.netns import delete_netns
from tests.host_device.helpers import Node, conf, fake_pci, link, present

PF, VF = "0000:3b:00.0", "0000:3b:02.1"


def pci_keys(key: str, address: str, info_file: Path | None = None) -> dict[str, Any]:
    runtime: dict[str, Any] = {"CNIDeviceInfoFile": str(info_file)} if info_file else {}
    if key == "deviceID":
        return {"runtimeConfig": {**runtime, "deviceID": address}}
    return {"pciBusID": address, **({"runtimeConfig": runtime} if runtime else {})}


@pytest.mark.parametrize("key", ["pciBusID", "deviceID"])
def test_pci_netdev_is_moved_and_reported(node: Node, key: str) -> None:
    dev = node.stand_in()
    mac = present(node.ns, dev)["address"]
    fake_pci(node.tmp / "sys", "0000:05:00.1", "ixgbe", (dev,))
    info = node.tmp / "devinfo" / "cni" / "ns-net-ctr-a_net1"
    cfg = conf(**pci_keys(key, "0000:05:00.1", info))
    pod = node.pod()
    result = node.cni("ADD", cfg, pod).ok()
    assert result["interfaces"] == [
        {"name": "net1", "mac": mac, "mtu": 1500, "sandbox": pod.path, "pciID": "0000:05:00.1"}
    ]
    assert present(pod, "net1")["address"] == mac and link(node.ns, dev) is None
    assert json.loads(info.read_text()) == {
        "type": "pci",
        "version": "1.1.0",
        "pci": {"pci-address": "0000:05:00.1"},
    }

    other = node.pod()
    out = node.cni("ADD", conf(**pci_keys(key, "0000:05:00.1")), other, container_id="ctr-b")
    assert out.code != 0 and "already in use by container ctr-a" in out.json["msg"]

    node.cni("DEL", cfg, pod).ok()
    assert link(node.ns, dev) is not None and not info.exists()


def test_device_info_copied_by_the_meta_plugin_is_left_alone(node: Node) -> None:
    dev = node.stand_in()
    fake_pci(node.tmp / "sys", "0000:05:00.2", "ixgbe", (dev,))
    info = node.tmp / "ns-net-ctr-a_net1"
    copied = '{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:05:00.2","rdma-device":"mlx5_3"}}'
    info.write_text(copied)
    cfg = conf(**pci_keys("deviceID", "0000:05:00.2", info))
    pod = node.pod()
    node.cni("ADD", cfg, pod).ok()
    node.cni("DEL", cfg, pod).ok()
    assert info.read_text() == copied


def test_vfio_device_is_handed_over_by_reference(node: Node) -> None:
    fake = FakeSysfs(node.tmp / "sys")
    fake.add_pci(PF, driver="i40e", totalvfs=8)
    fake.add_vf(PF, 1, VF, driver="vfio-pci", iommu_group=71)
    info = node.tmp / "devinfo-vfio"
    cfg = conf(ipam={}, **pci_keys("deviceID", VF, info))
    pod = node.pod()
    result = node.cni("ADD", cfg, pod).ok()
    assert result["interfaces"] == [{"name": "net1", "sandbox": pod.path, "pciID": VF}]
    assert result["ips"] == [{"address": "10.77.3.5/24", "gateway": "10.77.3.1", "interface": 0}]
    assert pod.link_names() == {"lo"}, "a userspace device has no netdev to move or configure"
    assert json.loads(info.read_text())["pci"] == {"pci-address": VF, "pf-pci-address": PF}
    node.cni("CHECK", {**cfg, "prevResult": result}, pod).ok()

    other = node.pod()
    out = node.cni("ADD", conf(**pci_keys("deviceID", VF)), other, container_id="ctr-b")
    assert out.code != 0 and "already in use by container ctr-a" in out.json["msg"]

    fake.bind(VF, "iavf")
    out = node.cni("CHECK", {**cfg, "prevResult": result}, pod)
    assert out.code != 0 and "no longer bound to a userspace driver" in out.json["msg"]
    fake.bind(VF, "vfio-pci")

    node.cni("DEL", cfg, pod).ok()
    assert not info.exists() and node.state_files() == []
    assert [c["cmd"] for c in node.ipam_calls() if c["cmd"] != "CHECK"] == ["ADD", "DEL"]
    node.cni("ADD", conf(**pci_keys("deviceID", VF)), other, container_id="ctr-b").ok()


def test_auxiliary_device_netdev(node: Node) -> None:
    dev = node.stand_in()
    fake = FakeSysfs(node.tmp / "sys")
    fake.add_pci(PF, driver="mlx5_core")
    fake.add_aux(PF, "mlx5_core.sf.4", driver="mlx5_core.sf")
    (node.tmp / "sys" / "devices" / BRIDGE / PF / "mlx5_core.sf.4" / "net" / dev).mkdir(parents=True)
    pod = node.pod()
    result = node.cni("ADD", conf(runtimeConfig={"deviceID": "mlx5_core.sf.4"}), pod).ok()
    assert result["interfaces"][0]["name"] == "net1" and "pciID" not in result["interfaces"][0]
    assert link(pod, "net1") is not None and link(node.ns, dev) is None


def test_unknown_device_id(node: Node) -> None:
    pod = node.pod()
    out = node.cni("ADD", conf(runtimeConfig={"deviceID": "0000:99:00.0"}), pod)
    assert out.code != 0 and "0000:99:00.0 is neither a PCI nor an auxiliary device" in out.json["msg"]


def test_gc_keeps_a_released_pci_device_until_it_is_back_then_restores_it(node: Node) -> None:
    """The pod's netns is gone but the kernel has not handed the device back yet (played by a
    netns of our own holding it): DEL and GC cannot find it, and since sysfs still lists the PCI
    device, GC keeps its released record instead of forgetting it. Once it is back in the node,
    down and under its pod name, the next GC restores it as it was and drops the record."""
    dev = node.stand_in()
    fake_pci(node.tmp / "sys", "0000:05:00.3", "ixgbe", (dev,))
    cfg = conf(**pci_keys("deviceID", "0000:05:00.3"))
    pod = node.pod()
    node.cni("ADD", cfg, pod).ok()
    pod.run("ip", "link", "set", "net1", "netns", node.sink.name)
    delete_netns(pod)
    node.cni("DEL", cfg, None, netns=pod.path).ok()
    gc = {**conf(), "cni.dev/valid-attachments": []}
    node.runner("host-device", "GC", gc, netns_exec=node.ns.name, env=node.env).ok()
    assert node.state_files() == ["hdnet~ctr-a~net1.json"], "GC forgot a device that is coming back"
    node.sink.run("ip", "link", "set", "net1", "down")
    node.sink.run("ip", "link", "set", "net1", "netns", node.ns.name)
    node.runner("host-device", "GC", gc, netns_exec=node.ns.name, env=node.env).ok()
    home = present(node.ns, dev)
    assert "UP" in home["flags"] and link(node.ns, "net1") is None
    assert node.state_files() == []
