"""Pods on three simulated nodes joined by a VXLAN overlay: reachability, flooding, MTU, isolation."""

from __future__ import annotations

import pytest

from tests.vxlan.topology import Cluster, Node


def bridge_fdb(node: Node, dev: str) -> list[dict[str, object]]:
    """The node's forwarding entries on `dev`, read with iproute2's `bridge` (not our code)."""
    import json

    out = node.ns.run("bridge", "-j", "fdb", "show", "dev", dev)
    entries: list[dict[str, object]] = json.loads(out) if out.strip() else []
    return entries


def flood_dsts(node: Node, dev: str) -> set[str]:
    return {
        str(e["dst"]) for e in bridge_fdb(node, dev) if e.get("mac") == "00:00:00:00:00:00" and "dst" in e
    }


def test_pods_on_different_nodes_reach_each_other_over_ipv4_and_ipv6(cluster: Cluster) -> None:
    pods = [cluster.add_pod(n, cluster.conf(42, n)) for n in cluster.nodes]
    for src in pods:
        for dst in pods:
            if src is not dst:
                assert src.ns.ping(dst.ip(4)), f"{src.node.index} -> {dst.node.index} over IPv4"
                assert src.ns.ping(dst.ip(6), extra=("-6",)), (
                    f"{src.node.index} -> {dst.node.index} over IPv6"
                )


def test_add_builds_one_device_and_bridge_per_vni_with_a_flood_entry_per_remote(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    first = cluster.add_pod(node, cluster.conf(42, node))
    cluster.add_pod(node, cluster.conf(42, node))
    links = node.ns.links()
    vx = links["vx42"]
    assert vx["linkinfo"]["info_kind"] == "vxlan"
    data = vx["linkinfo"]["info_data"]
    assert (data["id"], data["port"], data["local"]) == (42, 4789, node.v4)
    assert vx["mtu"] == 1450 and links["vxbr42"]["mtu"] == 1450
    assert vx["master"] == "vxbr42"
    assert sorted(n for n in links if n.startswith("vx")) == ["vx42", "vxbr42"], "one device pair per VNI"
    assert flood_dsts(node, "vx42") == {cluster.nodes[1].v4, cluster.nodes[2].v4}
    assert first.ns.links()["eth0"]["mtu"] == 1450
    assert first.result is not None
    assert first.result["interfaces"][0]["name"] == "vxbr42"
    assert first.result["interfaces"][-1]["name"] == "vx42"


def test_arp_broadcast_reaches_every_node(cluster: Cluster) -> None:
    conf = cluster.conf(43, ipam=False)
    a = cluster.add_pod(cluster.nodes[0], conf, "10.78.0.1/24")
    cluster.add_pod(cluster.nodes[1], conf, "10.78.0.2/24")
    cluster.add_pod(cluster.nodes[2], conf, "10.78.0.3/24")
    assert a.ns.ping("10.78.0.2")
    # Node 2 never talked to pod a; it knows a's MAC (via node 0's VTEP) only from the flooded ARP request.
    learned = {str(e["mac"]): e.get("dst") for e in bridge_fdb(cluster.nodes[2], "vx43")}
    assert learned.get(a.mac) == cluster.nodes[0].v4


def test_dont_fragment_ping_at_the_pod_mtu_passes_and_one_byte_more_fails_locally(cluster: Cluster) -> None:
    conf = cluster.conf(44, ipam=False)
    a = cluster.add_pod(cluster.nodes[0], conf, "10.79.0.1/24")
    cluster.add_pod(cluster.nodes[1], conf, "10.79.0.2/24")
    payload = 1450 - 28  # pod MTU minus IPv4 and ICMP headers
    assert a.ns.ping("10.79.0.2", extra=("-M", "do", "-s", str(payload)))
    out = a.ns.run("sh", "-c", f"ping -c1 -W2 -M do -s {payload + 1} 10.79.0.2 2>&1; echo rc=$?")
    assert "rc=1" in out
    assert "local error: message too long, mtu=1450" in out, out


def test_a_different_vni_on_the_same_nodes_is_isolated(cluster: Cluster) -> None:
    one, two = cluster.conf(45, ipam=False), cluster.conf(46, ipam=False)
    a = cluster.add_pod(cluster.nodes[0], one, "10.80.0.1/24")
    cluster.add_pod(cluster.nodes[1], one, "10.80.0.2/24")
    c = cluster.add_pod(cluster.nodes[0], two, "10.80.0.3/24")
    cluster.add_pod(cluster.nodes[1], two, "10.80.0.4/24")
    assert a.ns.ping("10.80.0.2") and c.ns.ping("10.80.0.4"), "each VNI works on its own"
    assert not a.ns.ping("10.80.0.4", timeout=1), "VNI 45 reached a pod on VNI 46"
    assert not c.ns.ping("10.80.0.2", timeout=1), "VNI 46 reached a pod on VNI 45"
    macs45 = {str(e["mac"]) for e in bridge_fdb(cluster.nodes[1], "vx45")}
    assert c.mac not in macs45


@pytest.mark.parametrize("v6_underlay", [False, True], ids=["ipv4-underlay", "ipv6-underlay"])
def test_mtu_defaults_to_underlay_minus_overhead(cluster: Cluster, v6_underlay: bool) -> None:
    node = cluster.nodes[0]
    remotes = [n.v6 if v6_underlay else n.v4 for n in cluster.nodes]
    node.ns.run("ip", "link", "set", "up0", "mtu", "1400")
    pod = cluster.add_pod(node, cluster.conf(47, remotes=remotes, ipam=False))
    want = 1400 - (70 if v6_underlay else 50)
    assert node.ns.links()["vx47"]["mtu"] == want
    assert pod.ns.links()["eth0"]["mtu"] == want
