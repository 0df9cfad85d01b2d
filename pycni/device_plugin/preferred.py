"""GetPreferredAllocation: which of the offered devices a container should get.

The kubelet offers the devices the TopologyManager allows and asks for `size` of them, some of
which it must include (devices an init container already holds). We answer, in order of priority:
the must-include devices; then as many devices as possible from a single NUMA node (the node the
must-include devices are on, else the node that can cover the rest, the fullest first); then within
the NUMA choice, per the pool's policy, `pack` (fill the PF with most free devices first: fewer
PFs to go wrong, more whole PFs left for others) or `spread` (round-robin over PFs: survives one PF
failing). The answer is a hint; the kubelet may still allocate differently.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Literal

from pycni.hw.discovery import Device

Policy = Literal["pack", "spread"]


def preferred(
    available: Sequence[str],
    must_include: Sequence[str],
    size: int,
    devices: Mapping[str, Device],
    policy: Policy = "pack",
) -> list[str]:
    chosen = list(dict.fromkeys(must_include))[: max(size, 0)]
    free = [d for d in dict.fromkeys(available) if d not in chosen]
    wanted = size - len(chosen)
    if wanted <= 0:
        return chosen
    by_numa: dict[int | None, list[str]] = defaultdict(list)
    for dev_id in free:
        by_numa[_numa(devices, dev_id)].append(dev_id)
    for numa in _numa_order(by_numa, chosen, devices, wanted):
        picks = _pick_by_pf(by_numa[numa], devices, wanted, policy)
        chosen += picks
        wanted -= len(picks)
        if wanted == 0:
            break
    return chosen


def _numa(devices: Mapping[str, Device], dev_id: str) -> int | None:
    dev = devices.get(dev_id)
    return dev.numa_node if dev else None


def _numa_order(
    by_numa: Mapping[int | None, list[str]], chosen: Sequence[str], devices: Mapping[str, Device], wanted: int
) -> list[int | None]:
    """Must-include's node first; then nodes that can cover `wanted` alone (smallest such first,
    keeping big nodes whole), then the rest by free count, largest first."""
    anchor = {_numa(devices, d) for d in chosen}

    def key(numa: int | None) -> tuple[int, int, int]:
        count = len(by_numa[numa])
        covers = count >= wanted
        return (0 if numa in anchor else 1, 0 if covers else 1, count if covers else -count)

    return sorted(by_numa, key=lambda n: (*key(n), -1 if n is None else n))


def _pick_by_pf(
    candidates: list[str], devices: Mapping[str, Device], wanted: int, policy: Policy
) -> list[str]:
    by_pf: dict[str, list[str]] = defaultdict(list)
    for dev_id in sorted(candidates):
        dev = devices.get(dev_id)
        by_pf[(dev.root_device if dev else "") or ""].append(dev_id)
    groups = sorted(by_pf.values(), key=lambda ids: (-len(ids), ids[0]))
    if policy == "pack":
        flat = [d for ids in groups for d in ids]
        return flat[:wanted]
    picks: list[str] = []
    depth = 0
    while len(picks) < wanted and any(depth < len(ids) for ids in groups):
        picks += [ids[depth] for ids in groups if depth < len(ids)][: wanted - len(picks)]
        depth += 1
    return picks
