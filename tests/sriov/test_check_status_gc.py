"""CHECK (both sides of the VF against config and prevResult), STATUS (code 50) and GC."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.fake_sysfs import FakeVf
from tests.helpers.netns import Netns
from tests.sriov.helpers import PF, PF_ADDRESS, SriovNode, conf, seeded_state, stand_in_mac

KEYS: dict[str, Any] = {
    "mac": "0a:58:00:00:00:71",
    "vlan": 71,
    "spoofchk": "on",
    "link_state": "enable",
    "max_tx_rate": 100,
}


def set_pf_key(node: SriovNode, index: int, key: str, value: Any) -> None:
    state = node.pf_state()
    state[PF][str(index)][key] = value
    node.vf_state_file.write_text(json.dumps(state))


def add_and_check(node: SriovNode, vf: FakeVf) -> tuple[Netns, dict[str, Any], dict[str, Any]]:
    """ADD with every kind of key, then a CHECK that passes: (pod, config, CHECK config)."""
    pod = node.pod()
    cfg = conf(vf, node=node, **KEYS)
    checked = {**cfg, "prevResult": node.cni("ADD", cfg, pod).ok()}
    node.cni("CHECK", checked, pod).ok()
    return pod, cfg, checked


POD_DRIFT: dict[str, tuple[Callable[[Netns], object], str]] = {
    "mac": (lambda pod: pod.run("ip", "link", "set", "net1", "address", "0a:58:00:00:00:99"), "MAC"),
    "mtu": (lambda pod: pod.run("ip", "link", "set", "net1", "mtu", "1280"), "MTU"),
    "address": (lambda pod: pod.run("ip", "addr", "flush", "dev", "net1", "scope", "global"), "address"),
    "name": (lambda pod: pod.run("ip", "link", "set", "net1", "down", "name", "eth9"), "missing"),
}


@pytest.mark.parametrize(
    ("key", "drifted", "named"),
    [
        ("vlan", 72, "vlan"),
        ("mac", "0a:58:00:00:00:72", "mac"),
        ("spoofchk", False, "spoofchk"),
        ("link_state", "auto", "link_state"),
        ("max_tx_rate", 0, "max_tx_rate"),
    ],
)
def test_check_detects_pf_side_drift(node: SriovNode, key: str, drifted: Any, named: str) -> None:
    vf = node.kernel_vfs[0]
    pod, cfg, checked = add_and_check(node, vf)
    good = node.pf_entry(vf)[key]

    set_pf_key(node, vf.index, key, drifted)
    out = node.cni("CHECK", checked, pod)
    assert out.code != 0 and f"{named}: the PF reports" in out.json["msg"], out.stdout

    set_pf_key(node, vf.index, key, good)
    node.cni("CHECK", checked, pod).ok()
    node.cni("DEL", cfg, pod).ok()
    assert node.pf_entry(vf) == seeded_state(vf.index)


@pytest.mark.parametrize("drift", sorted(POD_DRIFT))
def test_check_detects_pod_side_drift(node: SriovNode, drift: str) -> None:
    vf = node.kernel_vfs[1]
    pod, cfg, checked = add_and_check(node, vf)
    change, named = POD_DRIFT[drift]
    change(pod)
    out = node.cni("CHECK", checked, pod)
    assert out.code != 0 and named in out.json["msg"], out.stdout
    if drift == "name":
        pod.run("ip", "link", "set", "eth9", "name", "net1")
    node.cni("DEL", cfg, pod).ok()
    back = node.link(vf.netdev or "")
    assert back is not None and back["address"] == stand_in_mac(vf.index)


def test_check_needs_a_prev_result_and_a_record(node: SriovNode) -> None:
    vf = node.kernel_vfs[2]
    pod = node.pod()
    out = node.cni("CHECK", conf(vf, node=node), pod)
    assert out.code != 0 and "prevResult" in out.json["msg"]
    prev = {"cniVersion": "1.1.0", "interfaces": [{"name": "net1", "sandbox": pod.path}]}
    out = node.cni("CHECK", {**conf(vf, node=node), "prevResult": prev}, pod)
    assert out.code != 0 and "holds no VF" in out.json["msg"]


def test_status(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    status = {"cniVersion": "1.1.0", "name": "sriovnet", "type": "sriov"}
    node.cni("STATUS", {**status, "deviceID": vf.address}, None).ok()
    node.cni("STATUS", status, None).ok()

    node.fake.sysfs.set_numvfs(PF_ADDRESS, 0)
    out = node.cni("STATUS", {**status, "deviceID": vf.address}, None)
    assert out.json["code"] == 50 and "has no VFs enabled" in out.json["msg"]

    node.fake.sysfs.remove_pci(PF_ADDRESS)
    out = node.cni("STATUS", {**status, "deviceID": vf.address}, None)
    assert out.json["code"] == 50 and f"PF {PF_ADDRESS} of VF {vf.address} is gone" in out.json["msg"]

    node.fake.sysfs.remove_pci(vf.address)
    out = node.cni("STATUS", {**status, "deviceID": vf.address}, None)
    assert out.json["code"] == 50 and "does not exist" in out.json["msg"]

    out = node.cni("STATUS", status, None, netns="")
    assert out.code == 0
    gone = {**node.env, "PYCNI_SYSFS_ROOT": str(node.tmp / "no-sysfs")}
    out = node.runner("sriov", "STATUS", status, netns_exec=node.ns.name, env=gone)
    assert out.json["code"] == 50 and "cannot read the PCI devices" in out.json["msg"]


def test_gc_releases_the_vfs_of_attachments_that_are_not_valid(node: SriovNode) -> None:
    kept, orphaned = node.kernel_vfs[0], node.kernel_vfs[1]
    pod_a, pod_b = node.pod(), node.pod()
    node.cni("ADD", conf(orphaned, node=node, **KEYS), pod_a, container_id="ctr-a").ok()
    keep = node.cni("ADD", conf(kept, node=node, vlan=5), pod_b, container_id="ctr-b").ok()
    kept_state = node.pf_entry(kept)

    gc = {**conf(None, node=node), "cni.dev/valid-attachments": [{"containerID": "ctr-b", "ifname": "net1"}]}
    node.cni("GC", gc, None, container_id="", ifname="").ok()

    back = node.link(orphaned.netdev or "")
    assert back is not None and back["address"] == stand_in_mac(orphaned.index)
    assert node.pf_entry(orphaned) == seeded_state(orphaned.index)
    assert pod_a.link_names() == {"lo"} and "net1" in pod_b.link_names()
    assert node.pf_entry(kept) == kept_state
    assert node.reservations() == [keep["ips"][0]["address"].split("/")[0]]
    assert node.state_files() == [f"allocations/{kept.address}.json", "attachments/sriovnet~ctr-b~net1.json"]
