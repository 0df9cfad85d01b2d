"""Kernel mode: the VF's netdev moves into the pod, is configured, and comes back exactly as it was.

Every test seeds the PF-side state with non-default values, so a restore to defaults would show.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.cni import ALL_SPEC_VERSIONS, has_check, has_interfaces
from tests.sriov.helpers import PF_ADDRESS, SriovNode, conf, seeded_state, stand_in_mac

EVERY_KEY: dict[str, Any] = {
    "mac": "0a:58:00:00:00:41",
    "vlan": 100,
    "vlanQoS": 5,
    "vlanProto": "802.1AD",
    "spoofchk": "on",
    "trust": "off",
    "link_state": "enable",
    "min_tx_rate": 10,
    "max_tx_rate": 1000,
}
APPLIED: dict[str, Any] = {
    "mac": "0a:58:00:00:00:41",
    "vlan": 100,
    "qos": 5,
    "vlan_proto": "802.1ad",
    "spoofchk": True,
    "trust": False,
    "link_state": "enable",
    "min_tx_rate": 10,
    "max_tx_rate": 1000,
}


def test_add_moves_configures_and_del_restores_everything(node: SriovNode) -> None:
    vf = node.kernel_vfs[1]
    assert vf.netdev is not None
    node.ns.run("ip", "link", "set", vf.netdev, "mtu", "1400")
    before = node.link(vf.netdev)
    assert before is not None
    pod = node.pod()
    cfg = conf(vf, node=node, **EVERY_KEY)

    result = node.cni("ADD", cfg, pod).ok()

    assert result["interfaces"] == [
        {"name": "net1", "mac": APPLIED["mac"], "mtu": 1400, "sandbox": pod.path, "pciID": vf.address}
    ]
    assert result["ips"][0]["interface"] == 0 and result["ips"][0]["address"].startswith("10.56.217.")
    inside = pod.links()["net1"]
    assert inside["address"] == APPLIED["mac"] and inside["mtu"] == 1400
    assert "UP" in inside["flags"] and inside.get("ifalias") == vf.netdev
    assert {a for a in pod.addrs("net1") if not a.startswith("fe80")} == {result["ips"][0]["address"]}
    assert node.link(vf.netdev) is None
    assert node.pf_entry(vf) == APPLIED
    assert len(node.reservations()) == 1

    node.cni("DEL", cfg, pod).ok()

    after = node.link(vf.netdev)
    assert after is not None
    for key in ("address", "mtu", "ifalias"):
        assert after.get(key) == before.get(key), key
    assert "UP" in after["flags"] and "UP" in before["flags"]
    assert pod.link_names() == {"lo"}
    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.state_files() == [] and node.reservations() == []
    node.cni("DEL", cfg, pod).ok()  # idempotent


def test_only_the_configured_keys_are_touched(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    pod = node.pod()
    cfg = conf(vf, node=node, ipam=False, vlan=0)
    result = node.cni("ADD", cfg, pod).ok()
    assert result["interfaces"][0]["mac"] == stand_in_mac(vf.index), "no mac key: the netdev keeps its own"
    assert node.pf_entry(vf) == {**seeded_state(vf.index), "vlan": 0, "qos": 0}
    assert "UP" in pod.links()["net1"]["flags"], "without IPAM the link is still brought up"
    node.cni("DEL", cfg, pod).ok()
    assert node.pf_entry(vf) == seeded_state(vf.index)


@pytest.mark.parametrize(
    ("source", "expected"),
    [("mac", "0a:58:00:00:00:01"), ("args", "0a:58:00:00:00:02"), ("runtime", "0a:58:00:00:00:03")],
)
def test_mac_precedence_is_the_reference_one(node: SriovNode, source: str, expected: str) -> None:
    """`mac`, then CNI_ARGS MAC, then runtimeConfig.mac: each later one wins."""
    vf = node.kernel_vfs[2]
    keys: dict[str, Any] = {"mac": "0a:58:00:00:00:01"}
    args = None
    if source in ("args", "runtime"):
        args = "IgnoreUnknown=1;MAC=0A:58:00:00:00:02"
    if source == "runtime":
        keys["runtimeConfig"] = {"mac": "0a:58:00:00:00:03"}
    pod = node.pod()
    cfg = conf(vf, node=node, ipam=False, **keys)
    result = node.cni("ADD", cfg, pod, cni_args=args).ok()
    assert result["interfaces"][0]["mac"] == expected
    assert pod.links()["net1"]["address"] == expected and node.pf_entry(vf)["mac"] == expected
    node.cni("DEL", cfg, pod, cni_args=args).ok()
    assert node.pf_entry(vf)["mac"] == seeded_state(vf.index)["mac"]
    assert node.link(vf.netdev or "")["address"] == stand_in_mac(vf.index)  # type: ignore[index]


@pytest.mark.parametrize("cni_version", ALL_SPEC_VERSIONS)
def test_every_spec_version(node: SriovNode, cni_version: str) -> None:
    vf = node.kernel_vfs[3]
    pod = node.pod()
    cfg = conf(vf, cni_version, node=node, mac="0a:58:00:00:00:07")
    result = node.cni("ADD", cfg, pod).ok()
    assert result["cniVersion"] == cni_version
    if has_interfaces(cni_version):
        assert result["interfaces"][0]["name"] == "net1"
        assert result["interfaces"][0]["mac"] == "0a:58:00:00:00:07"
        assert ("pciID" in result["interfaces"][0]) == cni_version.startswith("1.")
    else:
        assert result["ip4"]["ip"].startswith("10.56.217.")
    if has_check(cni_version):
        node.cni("CHECK", {**cfg, "prevResult": result}, pod).ok()
    node.cni("DEL", cfg, pod).ok()
    assert node.link(vf.netdev or "") is not None and node.state_files() == []


def test_ifname_taken_in_the_pod_changes_nothing(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    pod = node.pod()
    pod.run("ip", "link", "add", "net1", "type", "veth", "peer", "name", "other")
    out = node.cni("ADD", conf(vf, node=node, vlan=5), pod)
    assert out.code != 0 and "net1" in out.json["msg"] and "already exists" in out.json["msg"]
    assert node.link(vf.netdev or "") is not None
    assert node.pf_state()["ens1f0"][str(vf.index)] == seeded_state(vf.index)
    assert node.state_files() == [] and node.reservations() == []


def test_unusable_devices_are_clear_errors(node: SriovNode) -> None:
    pod = node.pod()
    cases = {
        "0000:99:00.0": "0000:99:00.0 not found",
        PF_ADDRESS: "is not an SR-IOV virtual function",
    }
    for address, message in cases.items():
        out = node.cni("ADD", conf(address, node=node), pod)
        assert out.code != 0 and message in out.json["msg"], out.stdout
    vf = node.kernel_vfs[0]
    node.fake.sysfs.unbind(vf.address)
    out = node.cni("ADD", conf(vf, node=node), pod)
    assert out.code != 0 and "not bound to any driver" in out.json["msg"]
    node.fake.sysfs.bind(vf.address, "iavf")
    out = node.cni("ADD", conf(None, node=node), pod)
    assert out.json["code"] == 7 and "deviceID" in out.json["msg"]
    assert node.state_files() == [] and node.reservations() == []


def test_log_level_and_log_file_are_this_calls(node: SriovNode) -> None:
    vf = node.kernel_vfs[1]
    log = node.tmp / "sriov.log"
    pod = node.pod()
    cfg = conf(vf, node=node, vlan=3, logLevel="debug", logFile=str(log))
    node.cni("ADD", cfg, pod).ok()
    node.cni("DEL", {**cfg, "logLevel": "error"}, pod).ok()
    text = log.read_text()
    assert f"attaching VF {vf.address} (VF {vf.index} of ens1f0, netdev mode)" in text
    assert f"attached VF {vf.address}" in text, "debug lines are written at logLevel debug"
    assert "releasing VF" not in text, "info lines are not written at logLevel error"
