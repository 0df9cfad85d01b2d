"""Head-end replication: one all-zeros FDB entry per remote VTEP on the VXLAN device.

The kernel sends every broadcast, unknown-unicast and multicast frame to each all-zeros
entry's `dst` (`bridge fdb append 00:00:00:00:00:00 dev vx42 dst VTEP self permanent`).
Reconciling makes the set of entries equal the config's `remotes`, so a changed list takes
effect on the next ADD. Learned per-MAC entries are the kernel's and are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.cni.errors import InternalError
from pycni.net import fdb

if TYPE_CHECKING:
    from pycni.cni.ipaddr import IPAddress
    from pycni.net.nlsock import Rtnl

ZERO_MAC = "00:00:00:00:00:00"


def flood_remotes(host: Rtnl, index: int) -> set[IPAddress]:
    """The `dst` of every all-zeros entry of the device (its flood list)."""
    return {
        entry.dst
        for entry in fdb.entries(host, index)
        if entry.on_device and entry.dst is not None and entry.mac == ZERO_MAC
    }


def reconcile(host: Rtnl, index: int, wanted: set[IPAddress]) -> None:
    """Add the missing entries, remove those no longer wanted."""
    have = flood_remotes(host, index)
    for verb, change, dsts in (("append", fdb.append, wanted - have), ("del", fdb.delete, have - wanted)):
        for dst in sorted(dsts, key=str):
            try:
                change(host, index, ZERO_MAC, dst)
            except Exception as exc:
                raise InternalError(f"failed to {verb} the flood entry towards {dst}: {exc}") from exc


def verify(host: Rtnl, index: int, name: str, wanted: set[IPAddress]) -> None:
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
