"""The soak's invariants that look at the node: stores, links, rules, records, files, VFs, daemon.

Each check returns a list of findings (empty: the invariant holds), worded so that a finding
alone says what is wrong and where.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from pycni.net.netns import entered
from tests.helpers.soak.node import UNDERLAY, Node


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def reservations(ipam_dir: Path) -> dict[str, tuple[str, str]]:
    """Every address reserved in the host-local stores: "network/ip" -> (container ID, ifname)."""
    out: dict[str, tuple[str, str]] = {}
    try:
        networks = [d for d in os.listdir(ipam_dir) if not d.startswith(".")]
    except OSError:
        return out
    for net in networks:
        try:
            names = os.listdir(ipam_dir / net)
        except OSError:
            continue
        for name in names:
            if not _is_ip(name):
                continue
            try:
                owner, _, ifname = (ipam_dir / net / name).read_text().partition("\r\n")
            except OSError:
                continue
            out[f"{net}/{name}"] = (owner, ifname)
    return out


def pod_addresses(netns_path: str) -> list[str]:
    """The pod's global IPv4 and IPv6 addresses (empty when the netns is gone)."""
    from pyroute2 import IPRoute

    try:
        with entered(netns_path):
            ipr = IPRoute()
    except Exception:  # the netns went away between listing and entering
        return []
    try:
        return [
            str(a.get_attr("IFA_ADDRESS"))
            for a in ipr.get_addr()
            if a["scope"] == 0
            and a.get_attr("IFA_ADDRESS")
            and a["family"] in (socket.AF_INET, socket.AF_INET6)
        ]
    finally:
        ipr.close()


def _links() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["ip", "-d", "-j", "link", "show"], capture_output=True, check=True, text=True
    ).stdout
    return list(json.loads(out))


def leaked_links(node: Node) -> list[str]:
    """Links left in the node beyond its own (stand-ins, underlay) and the bridges it keeps."""
    keep = {"lo", UNDERLAY, *(vf.kernel_netdev for vf in node.sriov_vfs + node.host_device_vfs)}
    bridges = {n.conf.get("bridge") for n in node.networks.values()} | {"sbrm0", "sbrm1"}
    found = []
    for link in _links():
        name = link["ifname"]
        kind = link.get("linkinfo", {}).get("info_kind", "")
        if link.get("master"):
            found.append(f"bridge port {name} on {link['master']} ({kind or 'device'})")
        elif name not in keep and not (kind == "bridge" and name in bridges):
            found.append(f"link {name} ({kind or 'device'})")
    return found


def leaked_fdb() -> list[str]:
    """VXLAN FDB entries (those with a remote `dst`) left on the node."""
    out = subprocess.run(["bridge", "-j", "fdb", "show"], capture_output=True, check=True, text=True).stdout
    return [
        f"fdb {e.get('mac')} dev {e.get('ifname')} dst {e['dst']}"
        for e in json.loads(out or "[]")
        if "dst" in e
    ]


def leaked_rules() -> list[str]:
    """Masquerade rules of attachments left in nftables or iptables: the reference's format, which
    ours writes (`name: ".." id: ".."`, `, net: .., id: ..`, `macspoofchk-`), or an earlier pycni's."""
    marks = ("pycni/", 'id: \\"', ", id: ", "macspoofchk-", "pycni: if:")
    found = []
    for argv in (["nft", "list", "ruleset"], ["iptables-save"], ["ip6tables-save"]):
        proc = subprocess.run(argv, capture_output=True, check=False, text=True)
        found += [
            f"{argv[0]}: {line.strip()}" for line in proc.stdout.splitlines() if any(m in line for m in marks)
        ]
    return found


def leaked_files(node: Node) -> list[str]:
    """Addresses still reserved, device and multus records, cached results, temp files."""
    found = [
        f"address {key} reserved by {owner}/{ifname}"
        for key, (owner, ifname) in reservations(node.ipam_dir).items()
    ]
    for root in ("state", "multus", "ipam", "run"):
        base = node.work / root
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(node.work)
            for name in files:
                path = rel / name
                if name.endswith(".tmp") or ".tmp" in name:
                    found.append(f"temp file {path}")
                elif root == "state":
                    found.append(f"state record {path}")
                elif root == "multus":
                    found.append(f"multus file {path}")
    return found


def lock_files(node: Node) -> int:
    try:
        return len(os.listdir(node.work / "run" / "locks"))
    except OSError:
        return 0


def lock_file_bound(node: Node) -> int:
    """The lock files a node may keep for good: one per shared resource, however many pods came."""
    bridges = 2 + sum(1 for n in node.networks.values() if n.conf.get("bridge")) + 1  # + vxbr
    vfs = len(node.sriov_vfs) + len(node.host_device_vfs)
    return bridges + vfs + 1 + 1  # + the VNI, + host-device claims


def vf_state(node: Node) -> list[str]:
    """The PF-side VF settings and the VF netdevs, against the snapshot taken at the start."""
    found = []
    before = json.loads(node.vf_snapshot)
    now = json.loads((node.work / "vf-state.json").read_text())
    for pf in sorted(set(before) | set(now)):
        was, is_ = before.get(pf, {}), now.get(pf, {})
        for index in sorted(set(was) | set(is_)):
            if was.get(index) != is_.get(index):
                found.append(
                    f"PF-side state of VF {index} of {pf} was {was.get(index)}, now {is_.get(index)}"
                )
    links = {link["ifname"]: link for link in _links()}
    for vf in node.sriov_vfs + node.host_device_vfs:
        link = links.get(vf.kernel_netdev)
        if link is None:
            found.append(f"VF netdev {vf.kernel_netdev} ({vf.address}) is not back in the node")
        elif "UP" not in link.get("flags", []):
            found.append(f"VF netdev {vf.kernel_netdev} is not up as it was: {link.get('flags')}")
    return found


def vf_links_snapshot(node: Node) -> dict[str, tuple[str, int]]:
    links = {link["ifname"]: link for link in _links()}
    return {
        vf.kernel_netdev: (links[vf.kernel_netdev].get("address", ""), links[vf.kernel_netdev].get("mtu", 0))
        for vf in node.sriov_vfs + node.host_device_vfs
    }


def request_log(node: Node) -> dict[str, list[str]]:
    """Request id -> where it ran ("F", "D1", ...), from the lines the executables and daemon write."""
    runs: dict[str, list[str]] = {}
    try:
        text = node.run_log.read_text()
    except OSError:
        return runs
    for line in text.splitlines():
        where, _, request = line.partition(" ")
        runs.setdefault(request, []).append(where)
    return runs


def epoch_runs(runs: dict[str, list[str]]) -> Counter[str]:
    return Counter(where for places in runs.values() for where in places if where.startswith("D"))


def daemon_balance(epoch: int, stats: dict[str, Any], started: int, kills: int, exact: bool) -> list[str]:
    """The daemon's counters against the requests its workers started and the workers killed.

    Every request a worker started either finished (`requests`) or died with its worker (an
    orphan, counted in `errors` but in no type's errors); a worker killed before GO has an
    orphan without a start. So requests <= started <= requests + orphans. `exact`: the counters
    were read once the daemon was idle; otherwise just before it stopped, so they may trail.
    """
    kinds = stats.get("latency", {}).values()
    finished = sum(k["requests"] for k in kinds)
    typed_errors = sum(k["errors"] for k in kinds)
    orphans = stats["errors"] - typed_errors
    found = []
    if finished != stats["requests"]:
        found.append(f"daemon {epoch}: requests {stats['requests']} != sum over types {finished}")
    if orphans < 0:
        found.append(f"daemon {epoch}: errors {stats['errors']} < errors over types {typed_errors}")
    if exact and not stats["requests"] <= started <= stats["requests"] + orphans:
        found.append(
            f"daemon {epoch}: {started} requests started in workers, counters say {stats['requests']} "
            f"finished + {orphans} lost with their worker"
        )
    if not exact and stats["requests"] > started:
        found.append(f"daemon {epoch}: counted {stats['requests']} finished but only {started} started")
    if exact and stats["worker_restarts"] != kills:
        found.append(f"daemon {epoch}: {stats['worker_restarts']} worker restarts, {kills} workers killed")
    if exact and stats.get("refused"):
        found.append(f"daemon {epoch}: refused callers at quiet points: {stats['refused']}")
    return found
