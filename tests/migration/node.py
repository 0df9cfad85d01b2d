"""A node netns on which the Debian Go plugins (/usr/lib/cni) and ours act on the same pods.

What "the node is left exactly as before the ADD" compares (`Snapshot`): in the node and the
pod, every link (name, kind, master, MTU, alias, admin state), address, route and policy rule;
every file under the data root (host-local reservations with their content, our state, the
reference's caches) except host-local's lock and allocation cursor; every firewall rule and user
chain, in nftables (all families, iptables-nft's tables included) and in legacy iptables. Empty
tables and base chains are not compared: iptables and the reference plugins make them and
leave them (`table ip nat` with its POSTROUTING, `table bridge nat` with its PREROUTING).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bridge.node_state import NetnsState, files, netns_state
from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns, sh
from tests.helpers.poll import wait_until

GO_BIN = Path("/usr/lib/cni")


def go_plugins_installed(*names: str) -> bool:
    return all(os.access(GO_BIN / name, os.X_OK) for name in names)


def link_details(ns: Netns) -> frozenset[tuple[str, str, bool]]:
    """(name, alias, admin up) of every link: what host-device restores beyond `netns_state`."""
    return frozenset(
        (link["ifname"], link.get("ifalias", ""), "UP" in link.get("flags", []))
        for link in ns.ip("link", "show")
    )


def policy_rules(ns: Netns) -> frozenset[str]:
    return frozenset(
        json.dumps(rule, sort_keys=True) for v in ("-4", "-6") for rule in ns.ip(v, "rule", "show")
    )


def _nft_items(ns: Netns) -> frozenset[str]:
    """Rules (without handles and counters) and user chains of every nftables table."""
    data = json.loads(sh("nft", "-j", "list", "ruleset", netns=ns.name) or "{}")
    found: set[str] = set()
    for item in data.get("nftables", []):
        if "chain" in item and "hook" not in item["chain"]:
            chain = item["chain"]
            found.add(f"chain {chain['family']} {chain['table']} {chain['name']}")
        elif "rule" in item:
            rule = dict(item["rule"])
            rule.pop("handle", None)
            rule["expr"] = [e for e in rule.get("expr", []) if "counter" not in e]
            found.add("rule " + json.dumps(rule, sort_keys=True))
    return frozenset(found)


def _legacy_iptables(ns: Netns) -> frozenset[str]:
    found: set[str] = set()
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        if shutil.which(tool):
            text = sh(tool, netns=ns.name, check=False)
            found |= {
                line
                for line in text.splitlines()
                if line.startswith("-A") or (line.startswith(":") and " - [" in line)
            }
    return frozenset(found)


def firewall_state(ns: Netns) -> frozenset[str]:
    return _nft_items(ns) | _legacy_iptables(ns)


@dataclass(frozen=True)
class Snapshot:
    node: NetnsState
    pod: NetnsState
    node_links: frozenset[tuple[str, str, bool]]
    node_rules: frozenset[str]
    files: frozenset[str]
    firewall: frozenset[str]


def snapshot(node: Netns, pod: Netns, data: Path) -> Snapshot:
    return Snapshot(
        netns_state(node),
        netns_state(pod),
        link_details(node),
        policy_rules(node),
        files(data),
        firewall_state(node),
    )


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    out = []
    for field in ("node", "pod"):
        for what in ("links", "addresses", "routes"):
            was, now = getattr(getattr(before, field), what), getattr(getattr(after, field), what)
            if was != now:
                out.append(
                    f"{field} {what}: added {sorted(now - was, key=str)}, gone {sorted(was - now, key=str)}"
                )
    for field in ("node_links", "node_rules", "files", "firewall"):
        was, now = getattr(before, field), getattr(after, field)
        if was != now:
            out.append(f"{field}: added {sorted(now - was, key=str)}, gone {sorted(was - now, key=str)}")
    return out


def assert_as_before(before: Snapshot, after: Snapshot) -> None:
    left = differences(before, after)
    assert left == [], "the node is not as it was before the ADD:\n" + "\n".join(left)


@dataclass(frozen=True)
class Side:
    """One side's plugins (ours or the Go reference), exec'd in the node as a runtime does."""

    name: str
    runner: Runner
    env: dict[str, str]

    def with_env(self, **extra: str) -> Side:
        return Side(self.name, self.runner, {**self.env, **extra})

    def __call__(
        self,
        plugin: str,
        command: str,
        conf: dict[str, Any],
        pod: Netns | None,
        node: Netns,
        container_id: str,
        ifname: str = "eth0",
        netns: str | None = None,
    ) -> Outcome:
        path = netns if netns is not None else (pod.path if pod else "")
        return self.runner(
            plugin,
            command,
            conf,
            netns=path,
            container_id=container_id,
            ifname=ifname,
            netns_exec=node.name,
            env=self.env,
        )


def bin_dir_of(directory: Path, ours: Path, mine: tuple[str, ...], go: tuple[str, ...]) -> Path:
    """A CNI bin directory with plugins `mine` from `ours` and `go` from the Debian package."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in mine:
        (directory / name).symlink_to(ours / name)
    for name in go:
        (directory / name).symlink_to(GO_BIN / name)
    return directory


def legacy_iptables_path(directory: Path) -> str:
    """A PATH on which `iptables*` and `ip6tables*` are the legacy (xtables) tools, ours and the
    reference's alike (go-iptables runs `iptables` from PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    for family in ("iptables", "ip6tables"):
        for suffix in ("", "-save", "-restore"):
            target = shutil.which(f"{family}-legacy{suffix}")
            assert target, f"{family}-legacy{suffix} is not installed"
            (directory / f"{family}{suffix}").symlink_to(target)
    return f"{directory}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"


def uninstall(ours: Side, node: Netns, data: Path, *extra: str) -> str:
    """`pycni uninstall --node`, run in the node as its operator would, on the test's dirs."""
    env = {**os.environ, **ours.env}
    argv = [sys.executable, "-m", "pycni", "uninstall", "--node", "--cache-dir", str(data / "cache")]
    argv += ["--multus-cni-dir", str(data / "multus"), *extra]
    proc = subprocess.run(
        ["ip", "netns", "exec", node.name, *argv], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def iptables_nat(node: Netns) -> str:
    """The node's iptables nat table (iptables-nft here), as iptables-save prints it."""
    return node.run("iptables-save", "-t", "nat")


def _link_local_settled(node: Netns) -> bool:
    for link in node.ip("-6", "addr", "show"):
        if not link["ifname"].startswith(("veth", "mbr")) or "LOWER_UP" not in link.get("flags", []):
            continue
        mine = [a for a in link.get("addr_info", []) if a.get("local", "").startswith("fe80")]
        if not mine or any(a.get("tentative") for a in mine):
            return False
    return True


def settle(node: Netns) -> None:
    """Wait until each bridge and veth with a carrier has its IPv6 link-local address past DAD:
    the kernel adds it, and its local route, a moment after the link comes up, which a
    snapshot taken in between would count as the ADD's doing."""
    wait_until(lambda: _link_local_settled(node), what="IPv6 link-local addresses on the node")
