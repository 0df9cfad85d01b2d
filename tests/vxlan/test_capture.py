"""What crosses the underlay, captured on its bridge and dissected with scapy."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.layers.vxlan import VXLAN

from tests.vxlan.topology import UNDERLAY_BRIDGE, Cluster, capture, frames

VNI = 4242


def vxlan_inner(frame: bytes, vni: int) -> tuple[IP, Ether] | None:
    """(outer IP, inner Ethernet) of a VXLAN frame of `vni` on port 4789, else None."""
    pkt = Ether(frame)
    if not (pkt.haslayer(UDP) and pkt[UDP].dport == 4789 and pkt.haslayer(VXLAN)):
        return None
    if pkt[VXLAN].vni != vni:
        return None
    return pkt[IP], pkt[VXLAN].payload


def test_underlay_carries_the_pods_frame_in_udp_4789_with_the_vni_unfragmented(cluster: Cluster) -> None:
    conf = cluster.conf(VNI, ipam=False)
    a = cluster.add_pod(cluster.nodes[0], conf, "10.81.0.1/24")
    b = cluster.add_pod(cluster.nodes[1], conf, "10.81.0.2/24")
    assert a.ns.ping("10.81.0.2"), "warm-up: ARP resolved and MACs learned"
    cluster.underlay.run("ip", "link", "set", UNDERLAY_BRIDGE, "promisc", "on")  # see port-to-port traffic

    def echo_request(frame: bytes) -> bool:
        found = vxlan_inner(frame, VNI)
        return bool(found is not None and found[1].haslayer(ICMP) and found[1][ICMP].type == 8)

    with capture(cluster.underlay, UNDERLAY_BRIDGE) as sock:
        assert a.ns.ping("10.81.0.2", extra=("-M", "do", "-s", str(1450 - 28)))
        got = [f for f in frames(sock, echo_request) if echo_request(f)]
    assert got, "no VXLAN-encapsulated echo request seen on the underlay"
    outer, inner = vxlan_inner(got[0], VNI) or (None, None)
    assert outer is not None and inner is not None
    assert (outer.src, outer.dst) == (cluster.nodes[0].v4, cluster.nodes[1].v4)
    assert (inner.src, inner.dst) == (a.mac, b.mac)
    assert (inner[IP].src, inner[IP].dst) == ("10.81.0.1", "10.81.0.2")
    assert outer.len == 1500 and outer.frag == 0 and not outer.flags.MF, "the outer packet was fragmented"


def test_a_broadcast_is_replicated_to_every_remote_vtep(cluster: Cluster) -> None:
    conf = cluster.conf(VNI, ipam=False)
    a = cluster.add_pod(cluster.nodes[0], conf, "10.82.0.1/24")
    cluster.add_pod(cluster.nodes[1], conf, "10.82.0.2/24")
    cluster.underlay.run("ip", "link", "set", UNDERLAY_BRIDGE, "promisc", "on")
    seen: set[str] = set()

    def arp_copy(frame: bytes) -> bool:
        found = vxlan_inner(frame, VNI)
        if found is not None and found[1].haslayer(ARP) and found[1][ARP].op == 1:
            seen.add(found[0].dst)
        return len(seen) == 2

    with capture(cluster.underlay, UNDERLAY_BRIDGE) as sock:
        assert a.ns.ping("10.82.0.2")
        frames(sock, arp_copy)
    assert seen == {cluster.nodes[1].v4, cluster.nodes[2].v4}
