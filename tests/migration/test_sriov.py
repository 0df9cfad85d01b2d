"""sriov on the fake SR-IOV node: sriov-cni's cache file, written in its exact format for a VF it
attached, is DELeted by ours with the VF restored; ours writes that file for sriov-cni's DEL.

sriov-cni is not packaged here, so its side is played from its source: its ADD's effects on the
node (PF-side settings, the netdev moved and renamed, host-local's reservation by the Go plugin)
and its cache, `json.Marshal` of its NetConf (a map: keys sorted, compact).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import Runner
from tests.migration.node import GO_BIN
from tests.migration.test_uninstall import uninstall
from tests.sriov.helpers import PF, SriovNode, conf, make_node, seeded_state, stand_in_mac

SETTINGS: dict[str, Any] = {
    "vlan": 100, "vlanQoS": 2, "mac": "0a:58:0a:38:d9:05", "spoofchk": "on", "trust": "off",
    "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 900,
}  # fmt: skip


@pytest.fixture
def node(make_netns: Any, bin_dir: Path, tmp_path: Path) -> SriovNode:
    return make_node(make_netns, Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"}), bin_dir, tmp_path)


def sriov_cni_dir(node: SriovNode) -> Path:
    return node.tmp / "sriov"  # beside PYCNI_STATE_DIR: the default, as /var/lib/cni/sriov on a node


def sriov_cni_cache(node: SriovNode, config: dict[str, Any], index: int, netdev: str) -> dict[str, Any]:
    """What sriov-cni caches after ADD: its NetConf (types.NetConf keys, then SriovNetConf's)."""
    seeded = seeded_state(index)
    return {
        "cniVersion": config["cniVersion"], "name": config["name"], "type": "sriov",
        "ipam": {"type": "host-local"}, "dns": {},
        "OrigVfState": {
            "HostIFName": netdev, "SpoofChk": seeded["spoofchk"], "Trust": seeded["trust"],
            "AdminMAC": seeded["mac"], "EffectiveMAC": stand_in_mac(index), "Vlan": seeded["vlan"],
            "VlanQoS": seeded["qos"], "VlanProto": 33024, "MinTxRate": seeded["min_tx_rate"],
            "MaxTxRate": seeded["max_tx_rate"], "LinkState": 2, "MTU": 1500,
        },
        "Master": PF, "MAC": SETTINGS["mac"], "MTU": 1500, "vlan": 100, "vlanQoS": 2, "vlanProto": "802.1q",
        "deviceID": config["deviceID"], "VFID": index, "min_tx_rate": 10, "max_tx_rate": 900,
        "spoofchk": "on", "trust": "off", "link_state": "enable", "runtimeConfig": {},
    }  # fmt: skip


def attach_as_sriov_cni(node: SriovNode, index: int, cid: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """sriov-cni's ADD of VF `index` for `cid` as net1: its effects on the node, and its files."""
    vf = node.kernel_vfs[index]
    netdev = vf.kernel_netdev
    config = conf(vf, "1.0.0", node=node, **SETTINGS)
    pod = node.pod()
    lease = Runner(GO_BIN)("host-local", "ADD", config, container_id=cid, ifname="net1", netns=pod.path).ok()
    state = node.pf_state()
    state[PF][str(vf.index)].update(
        {"mac": SETTINGS["mac"], "vlan": 100, "qos": 2, "spoofchk": True, "trust": False,
         "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 900}
    )  # fmt: skip
    node.vf_state_file.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    node.ns.run("ip", "link", "set", netdev, "down")
    node.ns.run("ip", "link", "set", netdev, "netns", pod.name)
    pod.run("ip", "link", "set", netdev, "name", "net1")
    pod.run("ip", "link", "set", "net1", "address", SETTINGS["mac"], "up")
    pod.run("ip", "addr", "add", lease["ips"][0]["address"], "dev", "net1")
    directory = sriov_cni_dir(node)
    (directory / "pci").mkdir(parents=True, exist_ok=True)
    cache = sriov_cni_cache(node, config, vf.index, netdev)
    (directory / f"{cid}-net1").write_text(json.dumps(cache, sort_keys=True, separators=(",", ":")))
    (directory / "pci" / vf.address).write_text(pod.path)
    interface = {"name": "net1", "mac": SETTINGS["mac"], "sandbox": pod.path}
    result = {"cniVersion": "1.0.0", "interfaces": [interface], "ips": [{**lease["ips"][0], "interface": 0}]}
    return config, pod, result


def test_our_del_restores_a_vf_sriov_cni_attached(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    config, pod, result = attach_as_sriov_cni(node, 0, "sriov-cni-ctr")
    node.cni("CHECK", {**config, "prevResult": result}, pod, container_id="sriov-cni-ctr").ok()
    node.cni("DEL", {**config, "prevResult": result}, pod, container_id="sriov-cni-ctr").ok()
    assert node.pf_entry(vf) == seeded_state(vf.index), "PF side back from OrigVfState"
    link = node.link(vf.kernel_netdev)
    assert link is not None and link["address"] == stand_in_mac(vf.index) and link["mtu"] == 1500
    assert pod.link_names() == {"lo"}
    assert node.reservations() == [] and list(sriov_cni_dir(node).rglob("*")) == [sriov_cni_dir(node) / "pci"]
    assert node.state_files() == []


def test_our_gc_releases_sriov_cni_attachments_that_are_not_valid(node: SriovNode) -> None:
    vf = node.kernel_vfs[1]
    _, pod, _ = attach_as_sriov_cni(node, 1, "gone-ctr")
    pod.run("ip", "link", "set", "net1", "netns", node.ns.name)  # the pod died; the VF came home as net1
    node.fake.sysfs.rename_netdev(vf.address, vf.kernel_netdev, "net1")
    gc = {**conf(None, node=node), "cni.dev/valid-attachments": []}
    node.cni("GC", gc, None, container_id="", ifname="").ok()
    node.fake.sysfs.rename_netdev(vf.address, "net1", vf.kernel_netdev)
    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.link(vf.kernel_netdev) is not None and node.reservations() == []
    assert not (sriov_cni_dir(node) / "gone-ctr-net1").exists()


def test_our_add_writes_sriov_cni_cache_and_marker(node: SriovNode) -> None:
    """What sriov-cni's DEL reads: its keys, types and the values that restore the VF."""
    vf = node.kernel_vfs[2]
    pod = node.pod()
    config = conf(vf, "1.0.0", node=node, **SETTINGS)
    node.cni("ADD", config, pod, container_id="ours-ctr").ok()
    raw = (sriov_cni_dir(node) / "ours-ctr-net1").read_text()
    cache = json.loads(raw)
    assert raw == json.dumps(cache, sort_keys=True, separators=(",", ":")), "json.Marshal of a map"
    expected = sriov_cni_cache(node, config, vf.index, vf.kernel_netdev)
    # beside sriov-cni's keys: ours (it ignores unknown keys), and DPDKMode, which earlier
    # sriov-cni versions cached and read (later ones leave it out of the cache)
    assert set(cache) == set(expected) | {"pycni", "DPDKMode"} and cache["DPDKMode"] is False
    assert {k: cache[k] for k in expected if k != "ipam"} == {
        k: v for k, v in expected.items() if k != "ipam"
    }
    assert cache["ipam"]["type"] == "host-local"
    assert (sriov_cni_dir(node) / "pci" / vf.address).read_text() == pod.path
    node.cni("DEL", config, pod, container_id="ours-ctr").ok()
    assert not (sriov_cni_dir(node) / "ours-ctr-net1").exists()
    assert not (sriov_cni_dir(node) / "pci" / vf.address).exists()


def test_our_check_and_del_after_uninstall_restore_the_vf_from_sriov_cni_cache(node: SriovNode) -> None:
    """Rolling back runs `pycni uninstall --node` while our plugins still serve: a pod ours
    attached, its record dropped, is CHECKed and DELeted by ours from the sriov-cni cache our
    ADD wrote, as sriov-cni's DEL would."""
    vf = node.kernel_vfs[3]
    pod = node.pod()
    config = conf(vf, "1.0.0", node=node, **SETTINGS)
    result = node.cni("ADD", config, pod, container_id="handed-ctr").ok()
    out = uninstall(
        node.ns, node.env, "--cache-dir", str(node.tmp / "cache"), "--multus-cni-dir", str(node.tmp)
    )
    assert "record removed" in out and node.state_files() == []
    node.cni("CHECK", {**config, "prevResult": result}, pod, container_id="handed-ctr").ok()
    node.cni("DEL", {**config, "prevResult": result}, pod, container_id="handed-ctr").ok()
    assert node.pf_entry(vf) == seeded_state(vf.index), "PF side back from OrigVfState"
    link = node.link(vf.kernel_netdev)
    assert link is not None and link["address"] == stand_in_mac(vf.index)
    assert pod.link_names() == {"lo"} and node.reservations() == []
    assert list(sriov_cni_dir(node).rglob("*")) == [sriov_cni_dir(node) / "pci"]


def test_uninstall_hands_over_a_vf_whose_pod_died_before_its_del(node: SriovNode) -> None:
    """The pod's netns is gone, its DEL still to come: uninstall leaves sriov-cni's cache for it,
    and that DEL (ours here) puts the VF back, home under its pod name as the kernel returns it."""
    vf = node.kernel_vfs[2]
    pod = node.pod()
    config = conf(vf, "1.0.0", node=node, **SETTINGS)
    node.cni("ADD", config, pod, container_id="dead-ctr").ok()
    pod.run("ip", "link", "set", "net1", "netns", node.ns.name)  # the pod died; the VF came home
    node.fake.sysfs.rename_netdev(vf.address, vf.kernel_netdev, "net1")
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    dirs = ("--cache-dir", str(node.tmp / "cache"), "--multus-cni-dir", str(node.tmp / "multus"))
    assert "record removed" in uninstall(node.ns, node.env, *dirs)
    assert (sriov_cni_dir(node) / "dead-ctr-net1").exists()
    node.cni("DEL", config, None, container_id="dead-ctr", netns=pod.path).ok()
    node.fake.sysfs.rename_netdev(vf.address, "net1", vf.kernel_netdev)
    assert node.pf_entry(vf) == seeded_state(vf.index), "PF side back from OrigVfState"
    assert node.link(vf.kernel_netdev) is not None and node.reservations() == []
    assert list(sriov_cni_dir(node).rglob("*")) == [sriov_cni_dir(node) / "pci"]
