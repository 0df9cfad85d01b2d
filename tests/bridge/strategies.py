"""Hostile but parseable config parts shared by the partial-state fuzz tests (bridge, vxlan,
host-device): `ipam` sections, MTUs, link names, versions and request extras.

Each mixes values that work with values that must be refused, so a run covers refusals at
every stage of an ADD, and some ADDs that succeed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

VERSIONS = st.sampled_from(["0.1.0", "0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])

#: Ranges that host-local takes, and ranges it must refuse.
GOOD_RANGES = [
    {"subnet": "10.250.0.0/24"},
    {"subnet": "fd00:fa::/64"},
    {"subnet": "10.250.1.0/29", "rangeStart": "10.250.1.2", "rangeEnd": "10.250.1.3"},
    {"subnet": "10.250.2.0/24", "gateway": "10.250.2.254"},
]
BAD_RANGES: list[Any] = [
    {"subnet": "10.250.300.0/24"},
    {"subnet": "10.250.0.1/24"},
    {"subnet": "x"},
    {"subnet": 7},
    {"subnet": "10.250.0.0/31"},
    {"subnet": "10.250.0.0/24", "gateway": "x"},
    {"subnet": "10.250.0.0/24", "rangeStart": "10.251.0.5"},
    {"subnet": "10.250.0.0/24", "rangeStart": "10.250.0.9", "rangeEnd": "10.250.0.3"},
    {},
    "10.250.0.0/24",
]
#: `ipam.type`: ours, foreign, missing, paths, loops and names no file can have.
IPAM_TYPES = [
    "host-local", "host-local", "host-local", "../../bin/sh", "/bin/true", ".", "..", "",
    "no-such-ipam", "bridge", "vxlan", "host-device", "sriov", "multus", "x\x00y", "a" * 300,
]  # fmt: skip


def ranges() -> st.SearchStrategy[Any]:
    one = st.one_of(st.sampled_from(GOOD_RANGES), st.sampled_from(BAD_RANGES))
    return st.one_of(
        st.none(),
        st.just([]),
        st.lists(st.lists(one, max_size=2), min_size=1, max_size=3),
        st.text(max_size=4),
        st.integers(),
    )


def ipam_sections() -> st.SearchStrategy[Any]:
    """No section, an empty one, junk, or a section with a type but no ranges."""
    return st.sampled_from([None, {}, "x", 5, [], {"type": "host-local"}])


def mtus() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([None, 0, 67, 68, 576, 1280, 1450, 9000, 65535, 65536, -1, "1500"]), st.integers()
    )


def link_names() -> st.SearchStrategy[Any]:
    """Names the kernel refuses, and one that exists but is no bridge."""
    return st.sampled_from(["", "a" * 16, "a b", "x/y", "x:y", ".", "..", "br\n0", "lo", 5])


BOOLS = st.sampled_from([True, False, None, "yes"])
IPS = st.lists(st.sampled_from(["10.250.0.7", "10.99.0.1", "x", "fd00:fa::5", "10.250.0.7/24"]), max_size=2)
MACS = st.sampled_from(["0a:58:0a:fa:00:07", "zz", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "", 3])

#: Edits every plugin with IPAM is exposed to: the ipam section, version, requested IPs and MAC.
COMMON_EDITS: dict[str, st.SearchStrategy[Any]] = {
    "cniVersion": VERSIONS,
    "ipam": ipam_sections(),
    "ipam.type": st.sampled_from(IPAM_TYPES),
    "ipam.ranges": ranges(),
    "ipam.routes": st.sampled_from([[], [{"dst": "0.0.0.0/0"}], [{"dst": "x"}], "x", [{"dst": "fd00::/8"}]]),
    "ipam.subnet": st.sampled_from(["10.250.9.0/24", "x", "10.250.0.0/24"]),
    "ipam.gateway": st.sampled_from(["10.250.9.1", "x"]),
    "args.cni.ips": IPS,
    "runtimeConfig.ips": IPS,
    "runtimeConfig.mac": MACS,
    "dns": st.sampled_from([{"nameservers": ["10.0.0.53"]}, {"nameservers": "x"}, "x"]),
}

#: An edit's value that removes the key instead.
REMOVE = "<remove>"


def mutated(
    base: dict[str, Any], edits: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """`base` (a config that works) with one to three keys set (or removed) from `edits`.

    A dotted key reaches into a section; most examples then fail at one stage of ADD, some
    succeed, and few are refused by the config model alone.
    """
    pool = {**COMMON_EDITS, **edits}
    edit = st.sampled_from(sorted(pool)).flatmap(
        lambda key: st.tuples(st.just(key), st.one_of(pool[key], st.just(REMOVE)))
    )
    return st.lists(edit, min_size=1, max_size=3).map(lambda chosen: apply(base, chosen))


def apply(base: dict[str, Any], edits: list[tuple[str, Any]]) -> dict[str, Any]:
    conf = copy.deepcopy(base)
    for key, value in edits:
        *parents, last = key.split(".")
        target = conf
        for parent in parents:
            if not isinstance(target.get(parent), dict):
                target[parent] = {}
            target = target[parent]
        if value == REMOVE:
            target.pop(last, None)
        else:
            target[last] = value
    return conf


def host_local(data: Path) -> dict[str, Any]:
    """The ipam section of a base config: host-local with the scene's own data dir."""
    return {"type": "host-local", "dataDir": str(data / "ipam"), "ranges": [[{"subnet": "10.250.0.0/24"}]]}
