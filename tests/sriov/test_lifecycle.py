"""Who holds a VF, and what happens when pods die before their DEL.

A deleted netns destroys a veth instead of returning it to the node, so tests that need the
kernel's behaviour for a physical VF do its part: move `net1` back into the node under its
pod-side name, and rename the VF's netdev in the fake sysfs as the kernel's sysfs would show it.
"""

from __future__ import annotations

from typing import Any

from tests.helpers.netns import Netns, delete_netns, sh
from tests.sriov.helpers import SriovNode, conf, seeded_state, stand_in_mac

APPLIED: dict[str, Any] = {"mac": "0a:58:00:00:00:51", "vlan": 300, "spoofchk": "on", "trust": "off"}


def die_returning_vf(
    node: SriovNode, pod: Netns, netdev: str, address: str, clear_alias: bool = False
) -> None:
    """The pod's netns goes before its DEL; the kernel puts the VF back under its pod-side name."""
    if clear_alias:
        pod.run("ip", "link", "set", "net1", "alias", "")
    pod.run("ip", "link", "set", "net1", "netns", node.ns.name)
    node.fake.sysfs.rename_netdev(address, netdev, "net1")
    delete_netns(pod)


def test_a_vf_held_by_a_live_pod_is_refused(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    pod_a, pod_b = node.pod(), node.pod()
    cfg = conf(vf, node=node, **APPLIED)
    node.cni("ADD", cfg, pod_a).ok()
    applied = node.pf_entry(vf)

    out = node.cni("ADD", conf(vf, node=node, vlan=9), pod_b, container_id="ctr-b")

    assert out.code != 0 and out.json["code"] == 100
    assert f"pci address {vf.address} is already allocated to container ctr-a" in out.json["msg"]
    assert "net1" in pod_a.link_names() and pod_b.link_names() == {"lo"}
    assert node.pf_entry(vf) == applied and len(node.reservations()) == 1
    node.cni("DEL", cfg, pod_a).ok()
    assert node.pf_entry(vf) == seeded_state(vf.index)


def test_a_stale_claim_is_reclaimed_and_a_late_del_leaves_the_new_pod_alone(node: SriovNode) -> None:
    vf = node.kernel_vfs[1]
    assert vf.netdev is not None
    pod_a, pod_b = node.pod(), node.pod()
    cfg_a = conf(vf, node=node, **APPLIED)
    node.cni("ADD", cfg_a, pod_a).ok()
    die_returning_vf(node, pod_a, vf.netdev, vf.address)

    cfg_b = conf(vf, node=node, mac="0a:58:00:00:00:52", vlan=400)
    result_b = node.cni("ADD", cfg_b, pod_b, container_id="ctr-b").ok()
    node.fake.sysfs.rename_netdev(vf.address, "net1", vf.netdev)  # sysfs follows the rename back

    assert pod_b.links()["net1"]["address"] == "0a:58:00:00:00:52"
    b_state = node.pf_entry(vf)
    assert b_state["vlan"] == 400 and b_state["spoofchk"] is False, "B's snapshot was the seeded state"

    node.cni("DEL", cfg_a, pod_a).ok()  # the kubelet's late DEL for the dead pod

    assert pod_b.links()["net1"]["address"] == "0a:58:00:00:00:52"
    assert node.pf_entry(vf) == b_state
    assert node.reservations() == [result_b["ips"][0]["address"].split("/")[0]]
    node.cni("CHECK", {**cfg_b, "prevResult": result_b}, pod_b, container_id="ctr-b").ok()

    node.cni("DEL", cfg_b, pod_b, container_id="ctr-b").ok()
    assert node.pf_entry(vf) == seeded_state(vf.index)
    restored = node.link(vf.netdev)
    assert restored is not None and restored["address"] == stand_in_mac(vf.index)
    assert node.state_files() == [] and node.reservations() == []


def test_del_of_a_vf_returned_under_its_pod_side_name(node: SriovNode) -> None:
    """Found by PCI address even when the pod cleared the alias (sriov-cni#126, #349)."""
    vf = node.kernel_vfs[2]
    assert vf.netdev is not None
    node.ns.run("ip", "link", "set", vf.netdev, "mtu", "1450")
    pod = node.pod()
    cfg = conf(vf, node=node, **APPLIED)
    node.cni("ADD", cfg, pod).ok()
    pod.run("ip", "link", "set", "net1", "mtu", "1300")
    die_returning_vf(node, pod, vf.netdev, vf.address, clear_alias=True)
    assert node.link("net1") is not None

    node.cni("DEL", cfg, pod).ok()

    back = node.link(vf.netdev)
    assert back is not None and node.link("net1") is None
    assert (back["address"], back["mtu"], "UP" in back["flags"]) == (stand_in_mac(vf.index), 1450, True)
    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.state_files() == [] and node.reservations() == []


def test_del_after_the_netns_is_gone(node: SriovNode) -> None:
    """The veth dies with the netns (a VF would come back later): DEL succeeds, PF side and IPs are
    restored, and the claim stays (released) until the netdev is back or GC says it is gone."""
    vf = node.kernel_vfs[3]
    pod = node.pod()
    cfg = conf(vf, node=node, **APPLIED)
    node.cni("ADD", cfg, pod).ok()
    delete_netns(pod)

    node.cni("DEL", cfg, pod).ok()
    node.cni("DEL", cfg, None, netns="").ok()

    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.reservations() == []
    assert node.state_files() == [f"allocations/{vf.address}.json", "attachments/sriovnet~ctr-a~net1.json"]
    out = node.cni("ADD", conf(vf, node=node), node.pod(), container_id="ctr-b")
    assert out.json["code"] == 11 and "has not come back to the node yet" in out.json["msg"]

    gc = {**conf(None, node=node), "cni.dev/valid-attachments": []}
    node.cni("GC", gc, None, container_id="", ifname="").ok()
    assert node.state_files() == []


def test_del_without_a_record_releases_ipam_only(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    pod = node.pod()
    node.cni("DEL", conf(vf, node=node), pod).ok()
    assert node.link(vf.netdev or "") is not None and node.pf_entry(vf) == seeded_state(vf.index)


def test_a_netns_path_reused_by_another_netns_is_not_the_holder(node: SriovNode) -> None:
    """The claim records the netns's identity, not only its path (a /proc/<pid>/ns/net gets reused)."""
    vf = node.kernel_vfs[0]
    assert vf.netdev is not None
    pod_a = node.pod()
    node.cni("ADD", conf(vf, node=node, **APPLIED), pod_a).ok()
    die_returning_vf(node, pod_a, vf.netdev, vf.address)
    sh("ip", "netns", "add", pod_a.name)  # a new netns at the dead pod's path

    node.cni("ADD", conf(vf, node=node), node.pod(), container_id="ctr-b").ok()

    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.state_files() == [f"allocations/{vf.address}.json", "attachments/sriovnet~ctr-b~net1.json"]
