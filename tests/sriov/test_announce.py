"""Gratuitous ARP and unsolicited NA: frames dissected by scapy, and seen on the wire after ADD."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from pycni.net.announce import announce, gratuitous_arp, unsolicited_na
from tests.helpers.netns import Netns
from tests.sriov.helpers import SUBNET, SUBNET6, SriovNode, conf
from tests.vxlan.topology import capture, frames

MAC = "0a:58:0a:38:d9:05"
RAW_MAC = bytes.fromhex(MAC.replace(":", ""))


def test_gratuitous_arp_is_a_broadcast_request_for_our_own_address() -> None:
    pkt = Ether(gratuitous_arp(RAW_MAC, ipaddress.ip_address("10.56.217.5")))
    assert (pkt.dst, pkt.src, pkt.type) == ("ff:ff:ff:ff:ff:ff", MAC, 0x0806)
    arp = pkt[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.pdst) == (1, MAC, "10.56.217.5", "10.56.217.5")


def test_unsolicited_na_overrides_to_all_nodes_with_a_valid_checksum() -> None:
    frame = unsolicited_na(RAW_MAC, ipaddress.ip_address("fd00:56:217::5"))
    pkt = Ether(frame)
    assert (pkt.dst, pkt.src) == ("33:33:00:00:00:01", MAC)
    ip6 = pkt[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim) == ("fd00:56:217::5", "ff02::1", 255)
    na = pkt[ICMPv6ND_NA]
    assert (na.tgt, na.R, na.S, na.O) == ("fd00:56:217::5", 0, 0, 1)
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == MAC
    recomputed = Ether(frame)
    del recomputed[ICMPv6ND_NA].cksum
    assert Ether(bytes(recomputed))[ICMPv6ND_NA].cksum == na.cksum


def test_announce_sends_one_frame_per_address_out_of_the_interface(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns("sva")
    ns.run("ip", "link", "add", "a0", "address", MAC, "type", "veth", "peer", "name", "b0")
    ns.run("ip", "link", "set", "a0", "up")
    ns.run("ip", "link", "set", "b0", "up")
    addresses = [ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("fd00::3")]
    expected = [gratuitous_arp(RAW_MAC, addresses[0]), unsolicited_na(RAW_MAC, addresses[1])]
    with capture(ns, "b0") as sock:
        assert announce(ns.path, "a0", MAC, addresses) == 2
        got = frames(sock, lambda f: f == expected[1])
    ours = [f for f in got if f in expected]
    assert ours == expected, "missing, repeated or out of order"


def test_add_announces_every_address_on_the_wire(node: SriovNode) -> None:
    vf = node.kernel_vfs[0]
    ipam = {
        "type": "host-local",
        "dataDir": str(node.ipam_dir),
        "ranges": [[{"subnet": SUBNET}], [{"subnet": SUBNET6}]],
    }
    cfg = conf(vf, node=node, ipam=ipam, mac=MAC)
    pod = node.pod()
    seen: dict[str, str] = {}

    def announcement(frame: bytes) -> bool:
        pkt = Ether(frame)
        if pkt.haslayer(ARP) and pkt[ARP].psrc == pkt[ARP].pdst:
            seen["arp"] = pkt[ARP].psrc
        if pkt.haslayer(ICMPv6ND_NA) and pkt[ICMPv6ND_NA].O and pkt[IPv6].dst == "ff02::1":
            seen["na"] = pkt[ICMPv6ND_NA].tgt
        return len(seen) == 2

    with capture(node.wire, f"w{vf.index}") as sock:
        result = node.cni("ADD", cfg, pod).ok()
        frames(sock, announcement)
    addresses = {c["address"].split("/")[0] for c in result["ips"]}
    assert set(seen.values()) == addresses
    node.cni("DEL", cfg, pod).ok()
