"""Head-end replication: one all-zeros FDB entry per remote VTEP on the VXLAN device.

The kernel sends every broadcast, unknown-unicast and multicast frame to each all-zeros
entry's `dst` (`bridge fdb append 00:00:00:00:00:00 dev vx42 dst VTEP self permanent`;
several entries with one MAC are allowed only on VXLAN devices, hence NLM_F_APPEND).
Reconciling makes the set of entries equal the config's `remotes`, so a changed list takes
effect on the next ADD. Learned per-MAC entries are the kernel's and are left alone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pycni.cni.errors import InternalError
from pycni.plugins.vxlan.config import IPAddress

if TYPE_CHECKING:
    from pyroute2 import IPRoute

ZERO_MAC = "00:00:00:00:00:00"
NTF_SELF = 0x02  # the entry is the VXLAN device's own, not the bridge's
NUD_PERMANENT = 0x80


@dataclass(frozen=True)
class Change:
    added: frozenset[IPAddress]
    removed: frozenset[IPAddress]


def flood_remotes(host: IPRoute, index: int) -> set[IPAddress]:
    """The `dst` of every all-zeros entry of the device (its flood list)."""
    found: set[IPAddress] = set()
    for msg in host.fdb("dump", ifindex=index):
        if msg["ifindex"] != index or not msg["flags"] & NTF_SELF:
            continue
        dst = msg.get("NDA_DST")
        if dst and (msg.get("NDA_LLADDR") or "").lower() == ZERO_MAC:
            found.add(ipaddress.ip_address(dst))
    return found


def reconcile(host: IPRoute, index: int, wanted: set[IPAddress]) -> Change:
    """Add the missing entries, remove those no longer wanted; returns what changed."""
    have = flood_remotes(host, index)
    change = Change(frozenset(wanted - have), frozenset(have - wanted))
    for dst in sorted(change.added, key=str):
        _fdb(host, "append", index, dst)
    for dst in sorted(change.removed, key=str):
        _fdb(host, "del", index, dst)
    return change


def _fdb(host: IPRoute, verb: str, index: int, dst: IPAddress) -> None:
    try:
        host.fdb(verb, ifindex=index, lladdr=ZERO_MAC, dst=str(dst), state=NUD_PERMANENT, flags=NTF_SELF)
    except Exception as exc:
        raise InternalError(f"failed to {verb} the flood entry towards {dst}: {exc}") from exc


def verify(host: IPRoute, index: int, name: str, wanted: set[IPAddress]) -> None:
    """CHECK: the flood list is exactly `wanted`."""
    have = flood_remotes(host, index)
    missing, extra = sorted(map(str, wanted - have)), sorted(map(str, have - wanted))
    if missing or extra:
        parts = [
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(extra)}" if extra else "",
        ]
        raise InternalError(
            f"flood entries of {name} differ from remotes: " + "; ".join(p for p in parts if p)
        )
