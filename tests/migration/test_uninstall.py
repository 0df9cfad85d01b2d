"""`pycni uninstall --node` converts what only pycni (an earlier version of it) knows into the
reference plugins' form: sriov records into sriov-cni's cache, multus plans into multus-cni's
scratch cache, tagged masquerade rules into the reference's chain."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pycni.libcni.cache import CachedAttachment, ResultCache
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.migration.test_masquerade_formats import earlier_pycni_rules
from tests.sriov.helpers import SriovNode, conf, make_node


def uninstall(node: Netns, env: dict[str, str], *args: str) -> str:
    argv = [sys.executable, "-m", "pycni", "uninstall", "--node", *args]
    proc = subprocess.run(
        ["ip", "netns", "exec", node.name, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def snode(make_netns: Any, bin_dir: Path, tmp_path: Path) -> SriovNode:
    return make_node(make_netns, Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"}), bin_dir, tmp_path)


def test_an_earlier_pycnis_sriov_record_becomes_sriov_cni_cache(snode: SriovNode) -> None:
    vf = snode.kernel_vfs[0]
    config = conf(vf, "1.0.0", node=snode, vlan=7)
    pod = snode.pod()
    snode.cni("ADD", config, pod, container_id="old-ctr").ok()
    cache_dir = snode.tmp / "sriov"
    (cache_dir / "old-ctr-net1").unlink()  # an earlier pycni wrote no sriov-cni files
    (cache_dir / "pci" / vf.address).unlink()
    entry = CachedAttachment("sriovnet", "old-ctr", "net1", pod.path, None, [], {})
    ResultCache(snode.tmp / "cache").save(entry, json.dumps({**config, "cniVersion": "1.0.0"}).encode())
    out = uninstall(
        snode.ns, snode.env, "--cache-dir", str(snode.tmp / "cache"), "--multus-cni-dir", str(snode.tmp / "m")
    )
    assert "sriov-cni's cache written" in out
    cached = json.loads((cache_dir / "old-ctr-net1").read_text())
    assert (
        cached["deviceID"] == vf.address and cached["vlan"] == 7 and cached["ipam"] == {"type": "host-local"}
    )
    assert (cache_dir / "pci" / vf.address).read_text() == pod.path
    assert snode.state_files() == []


def test_an_earlier_pycnis_multus_plan_becomes_multus_cni_cache(
    node: Netns, tmp_path: Path, ours: Any
) -> None:
    cni_dir = tmp_path / "multus"
    cni_dir.mkdir()
    body: dict[str, Any] = {
        "kind": "pycniMultusPlan", "format": 1, "containerID": "old-pod", "netns": "",
        "podNamespace": "default", "podName": "web", "podUID": "", "cniArgs": [], "networkStatus": None,
        "attachments": [{
            "network": "kube-system/cluster", "ifname": "eth0", "default": True,
            "conflist": {"cniVersion": "1.0.0", "name": "cluster", "plugins": [{"type": "bridge"}]},
            "capabilityArgs": {}, "resourceName": "", "deviceID": "", "deviceInfoFile": "", "gateways": [],
            "claimsDefaultRoute": False, "filterFamilies": [], "deleted": False,
        }],
    }  # fmt: skip
    checksum = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    (cni_dir / "old-pod").write_text(json.dumps({"checksum": checksum, **body}))
    out = uninstall(node, ours.env, "--cache-dir", str(tmp_path / "none"), "--multus-cni-dir", str(cni_dir))
    assert "rewritten as multus-cni's scratch cache" in out
    (delegate,) = json.loads((cni_dir / "old-pod").read_text())
    assert (
        delegate["Name"] == "kube-system/cluster" and delegate["ConfList"]["plugins"][0]["type"] == "bridge"
    )


def test_an_earlier_pycnis_masquerade_moves_to_the_reference_chain(
    node: Netns, tmp_path: Path, ours: Any
) -> None:
    earlier_pycni_rules(node, "old-net", "old-ctr", "eth0", "10.236.0.5/24")
    result = {"cniVersion": "1.0.0", "ips": [{"address": "10.236.0.5/24"}]}
    ResultCache(tmp_path / "cache").save(
        CachedAttachment("old-net", "old-ctr", "eth0", "", result, [], {}),
        b'{"cniVersion":"1.0.0","plugins":[]}',
    )
    out = uninstall(
        node, ours.env, "--cache-dir", str(tmp_path / "cache"), "--multus-cni-dir", str(tmp_path / "m")
    )
    assert "moved to the reference's chain" in out
    saved = node.run("iptables-save", "-t", "nat")
    assert (
        'name: \\"old-net\\" id: \\"old-ctr\\"' in saved
        and "-d 10.236.0.0/24" in saved
        and "PYCNI-" not in saved
    )
    assert "pycni/" not in node.run("nft", "list", "ruleset")


def test_a_released_vf_is_kept_until_its_netdev_is_back_then_restored(
    snode: SriovNode, make_netns: Any
) -> None:
    """DEL'd while its netdev was still in a dying netns (a process kept it), the VF is named by our
    record alone: uninstall keeps it until the netdev is back, then restores the VF and drops it."""
    vf = snode.kernel_vfs[1]
    assert vf.netdev is not None
    config = conf(vf, "1.0.0", node=snode, vlan=7)
    pod, limbo = snode.pod(), make_netns("ulimbo")
    snode.cni("ADD", config, pod, container_id="dying").ok()
    pod.run("ip", "link", "set", "net1", "netns", limbo.name)  # the namespace lives on elsewhere
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    snode.cni("DEL", config, pod, container_id="dying").ok()
    args = ("--cache-dir", str(snode.tmp / "cache"), "--multus-cni-dir", str(snode.tmp / "m"))
    assert "not back in the node yet" in uninstall(snode.ns, snode.env, *args)
    assert f"allocations/{vf.address}.json" in snode.state_files()
    limbo.run("ip", "link", "set", "net1", "netns", snode.ns.name)  # it died: the VF comes home
    snode.fake.sysfs.rename_netdev(vf.address, vf.netdev, "net1")
    assert f"VF {vf.address} restored, record removed" in uninstall(snode.ns, snode.env, *args)
    assert snode.state_files() == []
    assert snode.link(vf.netdev) is not None
