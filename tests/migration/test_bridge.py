"""bridge + host-local with masquerade: an attachment made by one side (the Debian Go plugins,
or ours) is CHECKed and DELeted by the other, and the node is left exactly as before the ADD.

The reference (containernetworking-plugins 1.1.1 here) masquerades through `iptables`, which is
iptables-nft on this machine (rules in nftables' `ip nat` tables) or, with the legacy tools
first on PATH, legacy xtables: both are run. The reference's native nftables backend (v1.5+)
is not packaged; `test_masquerade_formats.py` holds ours to its format instead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import has_check
from tests.helpers.netns import Netns, unique
from tests.helpers.poll import wait_until
from tests.migration.node import Side, assert_as_before, legacy_iptables_path, snapshot

GO_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
DIRECTIONS = [("go", "pycni"), ("pycni", "go")]


def bridge_conf(data: Path, version: str, bridge: str, **keys: Any) -> dict[str, Any]:
    dual = version not in ("0.1.0", "0.2.0")  # 0.1.0/0.2.0 results hold one address per family
    ranges = (
        [[{"subnet": "10.231.0.0/24"}], [{"subnet": "fd00:231::/64"}]]
        if dual
        else [[{"subnet": "10.231.0.0/24"}]]
    )
    return {
        "cniVersion": version,
        "name": "migrate-net",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": True,
        "ipam": {"type": "host-local", "dataDir": str(data / "ipam"), "ranges": ranges},
        **keys,
    }


def cycle(
    adder: Side, remover: Side, node: Netns, pod: Netns, data: Path, conf: dict[str, Any]
) -> dict[str, Any]:
    """ADD by `adder`, CHECK and DEL by `remover`: the node must be as it was just before the ADD.

    Another pod stays attached throughout (a node's pods come and go around the one migrated),
    so the bridge, its gateway addresses and their routes are settled before the snapshot.
    """
    keeper = unique("keep", 20)
    adder("bridge", "ADD", conf, pod, node, keeper, ifname="keep0").ok()
    wait_until(lambda: not node.ip("-6", "addr", "show", "tentative"), what="DAD on the node")
    before = snapshot(node, pod, data)
    cid = unique("ctr", 20)
    result: dict[str, Any] = adder("bridge", "ADD", conf, pod, node, cid).ok()
    with_prev = {**conf, "prevResult": result}
    if has_check(conf["cniVersion"]):
        remover("bridge", "CHECK", with_prev, pod, node, cid).ok()
    remover("bridge", "DEL", with_prev, pod, node, cid).ok()
    assert_as_before(before, snapshot(node, pod, data))
    adder("bridge", "DEL", conf, pod, node, keeper, ifname="keep0").ok()
    return result


def iptables_save(node: Netns, legacy: bool = False) -> str:
    tool = "iptables-legacy-save" if legacy else "iptables-save"
    return node.run(tool, "-t", "nat")


@pytest.mark.parametrize("version", GO_VERSIONS)
@pytest.mark.parametrize(("adder", "remover"), DIRECTIONS)
def test_add_by_one_side_check_and_del_by_the_other(
    sides: dict[str, Side], node: Netns, make_netns: Any, data: Path, adder: str, remover: str, version: str
) -> None:
    conf = bridge_conf(data, version, unique("mbr", 12))
    cycle(sides[adder], sides[remover], node, make_netns("mpod"), data, conf)


@pytest.mark.parametrize(("adder", "remover"), DIRECTIONS)
def test_legacy_iptables_on_both_sides(
    sides: dict[str, Side], node: Netns, make_netns: Any, data: Path, tmp_path: Path, adder: str, remover: str
) -> None:
    path = legacy_iptables_path(tmp_path / "legacy")
    add_side, del_side = sides[adder].with_env(PATH=path), sides[remover].with_env(PATH=path)
    conf = bridge_conf(data, "1.0.0", unique("mbr", 12))
    pod = make_netns("mpod")
    add_side("bridge", "ADD", conf, pod, node, "seen").ok()
    assert "CNI-" in iptables_save(node, legacy=True) and "CNI-" not in iptables_save(node)
    del_side("bridge", "DEL", conf, pod, node, "seen").ok()
    cycle(add_side, del_side, node, pod, data, conf)


def test_ours_write_the_chain_the_reference_writes(
    sides: dict[str, Side], node: Netns, make_netns: Any, data: Path
) -> None:
    """Same network and container: the same chain name, jump and comment, rule for rule."""
    conf = bridge_conf(
        data,
        "1.0.0",
        unique("mbr", 12),
        ipam={"type": "host-local", "dataDir": str(data / "ipam"), "ranges": [[{"subnet": "10.231.0.0/24"}]]},
    )
    pod = make_netns("mpod")
    seen = {}
    for side in ("go", "pycni"):
        result = sides[side](
            "bridge",
            "ADD",
            {
                **conf,
                "ipam": {
                    **conf["ipam"],
                    "ranges": [
                        [{"subnet": "10.231.0.0/24", "rangeStart": "10.231.0.9", "rangeEnd": "10.231.0.9"}]
                    ],
                },
            },
            pod,
            node,
            "same-ctr",
            ifname="eth0",
        ).ok()
        assert result["ips"][0]["address"] == "10.231.0.9/24"
        seen[side] = sorted(
            line for line in iptables_save(node).splitlines() if "CNI-" in line and "pycni: if" not in line
        )
        sides[side]("bridge", "DEL", conf, pod, node, "same-ctr").ok()
    assert seen["go"] == seen["pycni"] and seen["go"]


def test_our_del_removes_the_references_rules_when_the_netns_is_gone(
    ours: Side, go: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """The reference leaks its chain then (plugins#810); ours finds it by name and comment."""
    conf = bridge_conf(data, "1.0.0", unique("mbr", 12))
    pod = make_netns("mpod")
    go("bridge", "ADD", conf, pod, node, "gone-ctr").ok()
    assert "CNI-" in iptables_save(node)
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    ours("bridge", "DEL", conf, None, node, "gone-ctr", netns=pod.path).ok()
    assert "CNI-" not in iptables_save(node)
    assert sorted((data / "ipam" / "migrate-net").glob("10.*")) == []
    wait_until(lambda: not [n for n in node.link_names() if n.startswith("veth")], what="the veth to go")


def test_our_gc_collects_the_references_stale_rules_and_keeps_the_valid(
    ours: Side, go: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    conf = bridge_conf(data, "1.0.0", unique("mbr", 12))
    keep, lose = make_netns("mpod"), make_netns("mpod")
    kept = go("bridge", "ADD", conf, keep, node, "keep-ctr").ok()
    go("bridge", "ADD", conf, lose, node, "lose-ctr").ok()
    gc = {
        **bridge_conf(data, "1.1.0", conf["bridge"]),
        "cni.dev/valid-attachments": [{"containerID": "keep-ctr", "ifname": "eth0"}],
    }
    out = ours.runner("bridge", "GC", gc, container_id=None, ifname=None, netns_exec=node.name, env=ours.env)
    assert out.code == 0, out.stdout
    jumps = [line for line in iptables_save(node).splitlines() if line.startswith("-A POSTROUTING")]
    kept_ip = kept["ips"][0]["address"].split("/")[0]
    assert len(jumps) == 1 and f"-s {kept_ip}/32" in jumps[0] and 'id: \\"keep-ctr\\"' in jumps[0]
    ours("bridge", "CHECK", {**conf, "prevResult": kept}, keep, node, "keep-ctr").ok()
