"""What a failed ADD may not leave behind on a test node: links, bridge ports, addresses, routes,
IPAM files and firewall rules, as comparable snapshots.

Links, addresses and routes are read through pyroute2 directly (not `pycni.net`, the code under
test), in milliseconds, so a fuzz example can take one before and one after its call; firewall
rules through the distribution's tools (`nft`, `iptables-save`), which cost a process each, so
only for configs that ask for rules (a config without ipMasq or macspoofchk never makes any).
Shared by the bridge, vxlan and host-device tests.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from pycni.net import netns
from tests.helpers.fuzz import Answer, assert_spec_answer, call_inprocess
from tests.helpers.netns import Netns, sh

#: Route attributes that say where a route goes (not its cache info or expiry).
_ROUTE_KEYS = ("RTA_DST", "RTA_GATEWAY", "RTA_PREFSRC", "RTA_TABLE")
#: The kernel's own IPv6 multicast route of each link (ff00::/8), which it adds again on its
#: own schedule when a link comes back up: a link that leaks shows in `links` anyway.
_RTN_MULTICAST = 5


@dataclass(frozen=True)
class NetnsState:
    """One namespace's links (name, kind, master, MTU), addresses and routes, by link name."""

    links: frozenset[tuple[str, str, str, int]]
    addresses: frozenset[tuple[str, str, int]]
    routes: frozenset[tuple[Any, ...]]


def netns_state(ns: Netns) -> NetnsState:
    with netns.entered(ns.path):
        ipr = IPRoute()
    try:
        msgs = ipr.get_links()
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in msgs}
        links = frozenset(
            (
                m.get_attr("IFLA_IFNAME"),
                m.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "",
                names.get(m.get_attr("IFLA_MASTER"), ""),
                m.get_attr("IFLA_MTU"),
            )
            for m in msgs
        )
        addresses = frozenset(
            (names.get(a["index"], "?"), a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr()
        )
        routes = frozenset(
            (
                r["family"],
                r["dst_len"],
                r["type"],
                names.get(r.get_attr("RTA_OIF"), ""),
                *(r.get_attr(key) for key in _ROUTE_KEYS),
            )
            for r in ipr.route("dump", family=socket.AF_UNSPEC)
            if r["type"] != _RTN_MULTICAST
        )
    finally:
        ipr.close()
    return NetnsState(links, addresses, routes)


#: host-local files that are not reservations: its lock and its allocation cursor, which moves
#: on an ADD whose address was released again by the rollback, as in the reference plugin.
_NOT_RESERVATIONS = ("lock", "last_reserved_ip")
#: host-local's index, a cache of the reservations rebuilt from them (ipam/host_local/index.py).
_CACHE_DIR = ".pycni"


def delete_links(ns: Netns, *names: str) -> None:
    """Remove links by name if present (what DEL keeps by design), in-process: no `ip` per example."""
    with netns.entered(ns.path):
        ipr = IPRoute()
    try:
        for name in names:
            index = ipr.link_lookup(ifname=name)
            if index:
                ipr.link("del", index=index[0])
    finally:
        ipr.close()


def files(root: Path) -> frozenset[str]:
    """Every file under `root` with its content (host-local's reservations name the container)."""
    found: set[str] = set()
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != _CACHE_DIR]
        for name in names:
            if name.startswith(_NOT_RESERVATIONS):
                continue
            path = Path(folder, name)
            found.add(f"{path.relative_to(root)}={path.read_text(errors='replace')}")
    return frozenset(found)


#: What marks a line of a firewall listing as a per-attachment rule or chain: the reference
#: plugins' formats, which we write (`CNI-` chains and their `name: ".." id: ".."` comments,
#: `cni_plugins_masquerade`, `macspoofchk-`), and our earlier ones (`pycni/` tags, `PYCNI-`).
RULE_MARKS = (
    "pycni",
    "PYCNI-",
    "CNI-",
    'name: \\"',
    "cni_plugins_masquerade",
    "macspoofchk-",
    "cni-br-iface-",
)


def firewall_rules(node: Netns) -> frozenset[str]:
    """The per-attachment rules and chains in nftables and iptables' nat tables.

    The nat tables and the base chains iptables makes stay once made (the reference plugins
    leave them too), so only what belongs to attachments is compared.
    """
    texts = [
        sh("nft", "list", "ruleset", netns=node.name),
        sh("iptables-save", "-t", "nat", netns=node.name, check=False),
        sh("ip6tables-save", "-t", "nat", netns=node.name, check=False),
    ]
    return frozenset(
        line.split(" [", 1)[0].strip()
        for text in texts
        for line in text.splitlines()
        if any(mark in line for mark in RULE_MARKS)
    )


@dataclass(frozen=True)
class NodeState:
    node: NetnsState
    pod: NetnsState
    files: frozenset[str]
    rules: frozenset[str] | None


def snapshot(node: Netns, pod: Netns, data_dir: Path, rules: bool) -> NodeState:
    return NodeState(
        netns_state(node), netns_state(pod), files(data_dir), firewall_rules(node) if rules else None
    )


def differences(before: NodeState, after: NodeState) -> list[str]:
    """What changed, in words a failing assertion can show."""
    out = []
    for what in ("links", "addresses", "routes"):
        for side in ("node", "pod"):
            was = getattr(getattr(before, side), what)
            now = getattr(getattr(after, side), what)
            if was != now:
                out.append(
                    f"{side} {what}: added {sorted(now - was, key=str)}, gone {sorted(was - now, key=str)}"
                )
    if before.files != after.files:
        out.append(
            f"files: added {sorted(after.files - before.files)}, gone {sorted(before.files - after.files)}"
        )
    if before.rules != after.rules:
        out.append(f"firewall rules: {before.rules} -> {after.rules}")
    return out


def call_in_node(node: Netns, plugin_type: str, env: dict[str, str], conf: dict[str, Any]) -> Answer:
    """One in-process call of `plugin_type` from inside the node's netns, as its daemon would."""
    with netns.entered(node.path):
        return call_inprocess(plugin_type, env, json.dumps(conf).encode())


def add_leaves_nothing(
    scene: Scene, plugin_type: str, conf: dict[str, Any], rules: bool, after_del: Callable[[], None]
) -> None:
    """ADD `conf`: a refused ADD, and the DEL that follows it, leave the node and pod as they were.

    An ADD that succeeds is DEL'd, then `after_del` removes what DEL keeps by design (a bridge,
    a VNI's devices), and the node must be back as it was too.
    """
    before = snapshot(scene.node, scene.pod, scene.data, rules)
    added = call_in_node(scene.node, plugin_type, {**scene.env, "CNI_COMMAND": "ADD"}, conf)
    assert_spec_answer(added, allow_internal=True)
    deleted = call_in_node(scene.node, plugin_type, {**scene.env, "CNI_COMMAND": "DEL"}, conf)
    assert_spec_answer(deleted, allow_internal=True)
    if added.code == 0:
        assert deleted.code == 0, f"DEL of a config ADD took failed: {deleted.stdout}"
        after_del()
    left = differences(before, snapshot(scene.node, scene.pod, scene.data, rules))
    assert left == [], f"ADD answered {added.stdout.strip()}, DEL {deleted.stdout.strip()}; left: {left}"


@dataclass(frozen=True)
class Scene:
    """A throw-away node and pod, the node's data root (IPAM, state) and the request's env."""

    node: Netns
    pod: Netns
    data: Path
    env: dict[str, str]


def scene(node: Netns, pod: Netns, tmp: Path, **env: str) -> Scene:
    """Data under `tmp/data` (compared), locks under `tmp/run` (not), an empty CNI_PATH."""
    (tmp / "bin").mkdir(exist_ok=True)
    base = {
        "CNI_CONTAINERID": "fuzz-ctr",
        "CNI_NETNS": pod.path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(tmp / "bin"),
        "PYCNI_RUN_DIR": str(tmp / "run"),
        "PYCNI_STATE_DIR": str(tmp / "data" / "state"),
    }
    return Scene(node, pod, tmp / "data", {**base, **env})
