"""The daemon's memory, as the kernel accounts it: RSS and PSS of the supervisor and each worker.

Workers are forked after `preload`, so most of their pages are the supervisor's, shared
copy-on-write: adding up RSS would count those once per process. PSS (proportional set size)
divides each shared page among the processes that map it, so the sum over the supervisor and
its workers is what the daemon really costs the node. Read from `/proc/<pid>/smaps_rollup`
(one pass over the page tables, ~0.1 ms per process), only when `--status` or /metrics asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: The smaps_rollup fields kept, and their names in `--status`.
FIELDS = {
    "Rss": "rss_kib",
    "Pss": "pss_kib",
    "Private_Clean": "private_clean_kib",
    "Private_Dirty": "private_dirty_kib",
}


@dataclass(frozen=True)
class Usage:
    """One process's memory in KiB; all zero if it is gone or unreadable."""

    rss_kib: int = 0
    pss_kib: int = 0
    private_clean_kib: int = 0
    private_dirty_kib: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "rss_kib": self.rss_kib,
            "pss_kib": self.pss_kib,
            "private_kib": self.private_clean_kib + self.private_dirty_kib,
        }


def usage(pid: int) -> Usage:
    """`pid`'s memory from `/proc/<pid>/smaps_rollup`."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            text = f.read().decode()
    except OSError:
        return Usage()
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS:
            values[FIELDS[key]] = int(rest.split()[0])
    return Usage(**values)


def report(supervisor: int, workers: Iterable[int]) -> dict[str, object]:
    """`--status`'s "memory": each process, and the PSS and RSS totals in MiB."""
    own = usage(supervisor)
    each = {pid: usage(pid) for pid in sorted(workers)}
    everyone = [own, *each.values()]
    return {
        "total_pss_mib": round(sum(u.pss_kib for u in everyone) / 1024, 1),
        "total_rss_mib": round(sum(u.rss_kib for u in everyone) / 1024, 1),
        "supervisor": {"pid": supervisor, **own.to_json()},
        "workers": [{"pid": pid, **u.to_json()} for pid, u in each.items()],
    }
