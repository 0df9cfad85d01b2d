"""VFIO/DPDK mode: PF-side settings and IPs, nothing moved, the VF handed over by reference."""

from __future__ import annotations

import json

from tests.sriov.helpers import PF_ADDRESS, SriovNode, conf, seeded_state


def test_vfio_vf_is_handed_over_by_reference(node: SriovNode) -> None:
    vf = node.vfio_vfs[0]
    info = node.tmp / "devinfo" / "cni" / "ns-sriovnet-ctr-a_net1"
    cfg = conf(vf, node=node, vlan=42, trust="on", runtimeConfig={"CNIDeviceInfoFile": str(info)})
    pod = node.pod()

    result = node.cni("ADD", cfg, pod).ok()

    assert result["interfaces"] == [
        {"name": "net1", "mac": seeded_state(vf.index)["mac"], "sandbox": pod.path, "pciID": vf.address}
    ]
    assert result["ips"][0]["interface"] == 0 and len(node.reservations()) == 1
    assert pod.link_names() == {"lo"}, "a VFIO VF has no netdev: nothing is moved or configured"
    assert json.loads(info.read_text()) == {
        "type": "pci",
        "version": "1.1.0",
        "pci": {"pci-address": vf.address, "pf-pci-address": PF_ADDRESS},
    }
    entry = node.pf_entry(vf)
    assert (entry["vlan"], entry["qos"], entry["vlan_proto"], entry["trust"]) == (42, 0, "802.1Q", True)
    node.cni("CHECK", {**cfg, "prevResult": result}, pod).ok()

    out = node.cni("ADD", conf(vf, node=node), node.pod(), container_id="ctr-b")
    assert out.code != 0 and "already allocated to container ctr-a" in out.json["msg"]

    node.fake.sysfs.bind(vf.address, "iavf")
    out = node.cni("CHECK", {**cfg, "prevResult": result}, pod)
    assert out.code != 0 and "no longer bound to a userspace driver" in out.json["msg"]
    node.fake.sysfs.bind(vf.address, "vfio-pci")

    node.cni("DEL", cfg, pod).ok()
    assert not info.exists() and node.state_files() == [] and node.reservations() == []
    assert node.pf_entry(vf) == seeded_state(vf.index)


def test_a_configured_mac_is_reported_and_a_meta_plugin_copy_is_left_alone(node: SriovNode) -> None:
    vf = node.vfio_vfs[1]
    info = node.tmp / "copied-by-multus"
    copied = '{"type":"pci","version":"1.1.0","pci":{"pci-address":"%s","vhost-net":"/dev/vhost-net"}}'
    info.write_text(copied % vf.address)
    cfg = conf(
        vf, node=node, ipam=False, mac="0a:58:00:00:00:61", runtimeConfig={"CNIDeviceInfoFile": str(info)}
    )
    pod = node.pod()
    result = node.cni("ADD", cfg, pod).ok()
    assert result["interfaces"][0]["mac"] == "0a:58:00:00:00:61" == node.pf_entry(vf)["mac"]
    node.cni("DEL", cfg, pod).ok()
    assert info.read_text() == copied % vf.address
    assert node.pf_entry(vf) == seeded_state(vf.index)


def test_vfio_vf_without_an_admin_mac_reports_none(node: SriovNode) -> None:
    vf = node.vfio_vfs[0]
    state = node.pf_state()
    del state["ens1f0"][str(vf.index)]  # never configured: reads as the defaults, MAC all zeros
    node.vf_state_file.write_text(json.dumps(state))
    pod = node.pod()
    cfg = conf(vf, node=node, ipam=False)
    result = node.cni("ADD", cfg, pod).ok()
    assert result["interfaces"] == [{"name": "net1", "sandbox": pod.path, "pciID": vf.address}]
    node.cni("DEL", cfg, pod).ok()
    assert str(vf.index) not in node.pf_state()["ens1f0"], "nothing was set, so nothing was written"
