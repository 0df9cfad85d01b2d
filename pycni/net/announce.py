"""Telling the segment an address moved: a gratuitous ARP per IPv4, an unsolicited NA per IPv6.

The kernel announces on link-up and MAC changes (`arp_notify`, `ndisc_notify`), but not when an
address that another pod had is reused behind a different MAC, which is the common case with
VFs: neighbours would keep sending to the old MAC until their cache expires. So after IPAM, each
address is announced once, as sriov-cni does.

Frames are built here and sent on an `AF_PACKET` socket opened in the pod's netns: at layer 2 the
NA needs no usable (non-tentative) source address, and nothing but the standard library is used.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

from pycni.cni.ipaddr import IPAddress
from pycni.net import netns

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6
ALL_NODES = "ff02::1"
ALL_NODES_MAC = bytes.fromhex("333300000001")
ICMPV6_NEIGHBOR_ADVERTISEMENT = 136
ND_OPT_TARGET_LINKADDR = 2
NA_FLAG_OVERRIDE = 0x20000000
IPPROTO_ICMPV6 = 58


def gratuitous_arp(mac: bytes, address: IPAddress) -> bytes:
    """An ARP request for our own address, broadcast: every neighbour updates its entry for it."""
    ip4 = address.packed
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, ip4, b"\x00" * 6, ip4)
    return BROADCAST + mac + struct.pack("!H", ETH_P_ARP) + arp


def unsolicited_na(mac: bytes, address: IPAddress) -> bytes:
    """A neighbour advertisement (override flag, our link-layer address) to all nodes (RFC 4861 §7.2.6)."""
    dst = socket.inet_pton(socket.AF_INET6, ALL_NODES)
    option = struct.pack("!BB6s", ND_OPT_TARGET_LINKADDR, 1, mac)
    body = struct.pack("!I16s", NA_FLAG_OVERRIDE, address.packed) + option
    pseudo = address.packed + dst + struct.pack("!I3xB", 4 + len(body), IPPROTO_ICMPV6)
    checksum = _checksum(pseudo + struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0) + body)
    icmp = struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, checksum) + body
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, len(icmp), IPPROTO_ICMPV6, 255, address.packed, dst)
    return ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6) + ipv6 + icmp


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def announce(pod_netns: str, ifname: str, mac: str, addresses: Iterable[IPAddress]) -> int:
    """Send one announcement per address out of `ifname` in the netns `pod_netns`; how many were sent."""
    raw_mac = bytes.fromhex(mac.replace(":", ""))
    frames = [gratuitous_arp(raw_mac, a) if a.version == 4 else unsolicited_na(raw_mac, a) for a in addresses]
    if not frames:
        return 0
    with netns.entered(pod_netns), socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        for frame in frames:
            sock.send(frame)
    return len(frames)
