"""Forwarding database entries of a device (`bridge fdb`), typed.

Only what the vxlan plugin's flood list needs: the entries of one device, and appending or
deleting a permanent entry that belongs to the device itself (`self`) rather than to a bridge
it is a port of. Several entries with one MAC are allowed only on VXLAN devices, which is why
adding is an append (NLM_F_APPEND) and not a replace. The requests are pyroute2's
(`Rtnl.pyroute2()`): neighbour messages are built nowhere else in pycni.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pycni.cni.ipaddr import IPAddress
from pycni.net.nlsock import Rtnl, dump

NTF_SELF = 0x02  # linux/neighbour.h: the device's own entry, not its bridge master's
NUD_PERMANENT = 0x80  # never expires, never learned over


@dataclass(frozen=True)
class FdbEntry:
    """One entry: frames for `mac` go to the remote endpoint `dst` (None on plain devices)."""

    ifindex: int
    mac: str
    dst: IPAddress | None
    on_device: bool  # NTF_SELF


def entries(ipr: Rtnl, ifindex: int) -> list[FdbEntry]:
    """The FDB entries of the device `ifindex` (the kernel's filter also passes other devices')."""
    found = []
    for msg in dump(lambda: ipr.pyroute2().fdb("dump", ifindex=ifindex)):
        if msg["ifindex"] != ifindex:
            continue
        dst = msg.get("NDA_DST")
        found.append(
            FdbEntry(
                ifindex=msg["ifindex"],
                mac=(msg.get("NDA_LLADDR") or "").lower(),
                dst=ipaddress.ip_address(dst) if dst else None,
                on_device=bool(msg["flags"] & NTF_SELF),
            )
        )
    return found


def append(ipr: Rtnl, ifindex: int, mac: str, dst: IPAddress) -> None:
    """`bridge fdb append MAC dev DEV dst DST self permanent`."""
    ipr.pyroute2().fdb("append", **_device_entry(ifindex, mac, dst))


def delete(ipr: Rtnl, ifindex: int, mac: str, dst: IPAddress) -> None:
    """`bridge fdb del MAC dev DEV dst DST self`: only the entry towards `dst` goes."""
    ipr.pyroute2().fdb("del", **_device_entry(ifindex, mac, dst))


def _device_entry(ifindex: int, mac: str, dst: IPAddress) -> dict[str, object]:
    return {"ifindex": ifindex, "lladdr": mac, "dst": str(dst), "state": NUD_PERMANENT, "flags": NTF_SELF}
