"""Masquerade rules in formats no packaged plugin here writes: the reference's native nftables
backend (containernetworking/plugins v1.5+, `pkg/ip/ipmasq_nftables_linux.go`) and the tagged
rules earlier versions of pycni wrote. Ours must write the former exactly, find it the way the
reference does, and remove both on DEL and GC.

The reference's format is rebuilt here from its source, independently of our code: table and
chain comments, `postrouting` returning multicast and jumping to `masq_checks`, one rule per
pod address commented `<sha512(net)[:16]>-<sha512(ifname:containerID)[:16]>, net: .., if: .., id: ..`.
"""

from __future__ import annotations

import hashlib
import json
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

from pycni.net import firewall
from pycni.net.netns import entered
from tests.helpers.netns import Netns, unique
from tests.migration.node import Side

TABLE = "cni_plugins_masquerade"
TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
CHAIN_COMMENT = "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"


def h16(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:16]


def reference_comment(net: str, ifname: str, cid: str) -> str:
    return f"{h16(net)}-{h16(ifname + ':' + cid)}, net: {net}, if: {ifname}, id: {cid}"[:128]


def reference_add(node: Netns, net: str, ifname: str, cid: str, addr: str) -> None:
    """What the reference's ADD transaction does (knftables), for one IPv4 address."""
    ip = ip_interface(addr)
    note = reference_comment(net, ifname, cid)
    batch = f"""add table inet {TABLE} {{ comment "{TABLE_COMMENT}" ; }}
add chain inet {TABLE} masq_checks {{ comment "{CHAIN_COMMENT}" ; }}
add chain inet {TABLE} postrouting {{ type nat hook postrouting priority srcnat ; }}
flush chain inet {TABLE} postrouting
add rule inet {TABLE} postrouting ip daddr == 224.0.0.0/4  return
add rule inet {TABLE} postrouting ip6 daddr == ff00::/8  return
add rule inet {TABLE} postrouting goto masq_checks
add rule inet {TABLE} masq_checks ip saddr == {ip.ip} ip daddr != {ip.network} masquerade comment "{note}"
"""
    node.run("sh", "-c", f"nft -f - <<'EOF'\n{batch}EOF")


def masq_rules(node: Netns) -> list[dict[str, Any]]:
    out = node.run("nft", "-j", "list", "ruleset")
    items = json.loads(out).get("nftables", [])
    return [
        i["rule"]
        for i in items
        if "rule" in i and i["rule"]["table"] == TABLE and i["rule"]["chain"] == "masq_checks"
    ]


def reference_teardown(node: Netns, net: str, ifname: str, cid: str) -> int:
    """The reference's teardown: rules of masq_checks whose comment starts with the instance hash."""
    prefix = f"{h16(net)}-{h16(ifname + ':' + cid)}"
    doomed = [r["handle"] for r in masq_rules(node) if r.get("comment", "").startswith(prefix)]
    for handle in doomed:
        node.run("nft", "delete", "rule", "inet", TABLE, "masq_checks", "handle", str(handle))
    return len(doomed)


def bridge_conf(data: Path, bridge: str, **keys: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "fmt-net",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipam": {
            "type": "host-local",
            "dataDir": str(data / "ipam"),
            "ranges": [[{"subnet": "10.232.0.0/24"}]],
        },
        **keys,
    }


def test_our_nftables_rules_are_the_references(ours: Side, node: Netns, make_netns: Any, data: Path) -> None:
    conf = bridge_conf(data, unique("mbr", 12), ipMasq=True, ipMasqBackend="nftables")
    pod = make_netns("mpod")
    result = ours("bridge", "ADD", conf, pod, node, "nft-ctr").ok()
    ip = ip_interface(result["ips"][0]["address"])
    table = node.run("nft", "list", "table", "inet", TABLE)
    assert 'comment "Masquerading for plugins from github.com/containernetworking/plugins"' in table
    assert "ip daddr 224.0.0.0/4 return" in table and "goto masq_checks" in table
    (rule,) = masq_rules(node)
    assert rule["comment"] == reference_comment("fmt-net", "eth0", "nft-ctr")
    assert f"ip saddr {ip.ip} ip daddr != {ip.network} masquerade" in table
    ours("bridge", "CHECK", {**conf, "prevResult": result}, pod, node, "nft-ctr").ok()
    # the reference's teardown finds exactly our rule by its comment
    assert reference_teardown(node, "fmt-net", "eth0", "nft-ctr") == 1
    assert masq_rules(node) == []


def test_our_del_and_gc_remove_the_references_nftables_rules(
    ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """Pods attached by a reference with the nftables backend: our DEL (netns gone too) and GC."""
    conf = bridge_conf(data, unique("mbr", 12), ipMasq=True)
    pods = [make_netns("mpod") for _ in range(3)]
    for n in range(3):
        reference_add(node, "fmt-net", "eth0", f"ref-{n}", f"10.232.0.{20 + n}/24")
    ours("bridge", "DEL", conf, None, node, "ref-0", netns="").ok()
    assert [r["comment"] for r in masq_rules(node)] == [
        reference_comment("fmt-net", "eth0", f"ref-{n}") for n in (1, 2)
    ]
    gc = {
        **conf,
        "cniVersion": "1.1.0",
        "cni.dev/valid-attachments": [{"containerID": "ref-2", "ifname": "eth0"}],
    }
    out = ours.runner("bridge", "GC", gc, container_id=None, ifname=None, netns_exec=node.name, env=ours.env)
    assert out.code == 0, out.stdout
    assert [r["comment"] for r in masq_rules(node)] == [reference_comment("fmt-net", "eth0", "ref-2")]
    ours("bridge", "DEL", conf, pods[2], node, "ref-2").ok()
    assert TABLE not in node.run("nft", "list", "tables")


def earlier_pycni_rules(node: Netns, net: str, cid: str, ifname: str, addr: str) -> None:
    """The tagged rules pycni wrote before it wrote the reference's: nft table and PYCNI- chain."""
    ip = ip_interface(addr)
    attachment = hashlib.sha256((cid + "\0" + ifname).encode()).hexdigest()[:12]
    tag = f"pycni/{hashlib.sha256(net.encode()).hexdigest()[:12]}/{attachment}"
    chain = "PYCNI-" + hashlib.sha256(tag.encode()).hexdigest()[:22]
    nft = f"""add table inet pycni_masquerade
add chain inet pycni_masquerade postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add rule inet pycni_masquerade postrouting ip saddr {ip.ip} ip daddr != {ip.network} \\
    ip daddr != 224.0.0.0/4 masquerade comment "{tag}"
"""
    node.run("sh", "-c", f"nft -f - <<'EOF'\n{nft}EOF")
    ipt = f"""*nat
:{chain} - [0:0]
-A {chain} -d {ip.network} -j ACCEPT
-A {chain} ! -d 224.0.0.0/4 -j MASQUERADE
-A POSTROUTING -s {ip.ip} -m comment --comment "{tag}" -j {chain}
COMMIT
"""
    node.run("sh", "-c", f"iptables-restore --noflush <<'EOF'\n{ipt}EOF")


def test_rules_of_an_earlier_pycni_are_checked_and_removed(
    ours: Side, node: Netns, make_netns: Any, data: Path, tmp_path: Path
) -> None:
    """A node upgraded with pods running: DEL, CHECK and GC still know the earlier format."""
    conf = bridge_conf(data, unique("mbr", 12), ipMasq=True)
    earlier_pycni_rules(node, "fmt-net", "old-ctr", "eth0", "10.232.0.40/24")
    earlier_pycni_rules(node, "fmt-net", "old-gc", "eth0", "10.232.0.41/24")
    with entered(node.path):
        owner = firewall.RuleOwner("fmt-net", "old-ctr", "eth0")
        assert firewall.masq_addresses(owner, tmp_path) == {"10.232.0.40"}
    ours("bridge", "DEL", conf, None, node, "old-ctr", netns="").ok()
    gc = {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": []}
    out = ours.runner("bridge", "GC", gc, container_id=None, ifname=None, netns_exec=node.name, env=ours.env)
    assert out.code == 0, out.stdout
    assert "pycni" not in node.run("nft", "list", "ruleset") and "PYCNI-" not in node.run(
        "iptables-save", "-t", "nat"
    )
