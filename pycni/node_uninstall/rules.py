"""Masquerade rules the reference cannot find: convert them to its iptables format.

Rules an earlier pycni tagged (`pycni/<hash>/<hash>`) name no network or container in clear;
the runtime's result caches do, so each cached attachment whose tag has rules gets them anew in
the reference's chain, and the tagged ones go. Rules in the reference's nftables format are
removed only by the reference v1.5 and later: `--masquerade-to-iptables` moves them into its
iptables chains for an older one.
"""

from __future__ import annotations

from ipaddress import ip_interface
from pathlib import Path

from pycni.cni.ipaddr import IPInterface
from pycni.libcni.cache import CachedAttachment
from pycni.net import fw_legacy, fwtool, masq_nftables
from pycni.net.masq_iptables import Iptables


def earlier_masquerade(run_dir: Path, cached: list[CachedAttachment], report: list[str]) -> None:
    legacy = fw_legacy.Legacy(run_dir)
    for entry in cached:
        found = legacy.addresses(entry.network, entry.container_id, entry.ifname)
        if not found:
            continue
        Iptables(run_dir).add(entry.network, entry.container_id, entry.ifname, _with_prefixes(entry, found))
        legacy.delete(entry.network, entry.container_id, entry.ifname)
        who = f"{entry.container_id}/{entry.ifname} on {entry.network}"
        report.append(f"masquerade: {who}: moved to the reference's chain")
    left = legacy.nft.tags() | (legacy.iptables.tags() if fwtool.has_iptables() else set())
    for tag in sorted(left):
        report.append(f"masquerade: rules tagged {tag} belong to no cached attachment: left in place")


def _with_prefixes(entry: CachedAttachment, addresses: set[str]) -> list[IPInterface]:
    """The pod's addresses with their prefixes, from the cached result (else host routes)."""
    known = {}
    for ip in (entry.result or {}).get("ips", []) or []:
        if isinstance(ip, dict) and "address" in ip:
            address = ip_interface(ip["address"])
            known[str(address.ip)] = address
    return [known.get(a) or ip_interface(a) for a in sorted(addresses)]


def nftables_to_iptables(run_dir: Path, report: list[str]) -> None:
    nft = masq_nftables.Nftables(run_dir)
    moved: dict[tuple[str, str, str], list[IPInterface]] = {}
    for rule in nft._all_rules() or []:
        owner = _owner(str(rule.get("comment", "")))
        source, dest = fwtool.nft_saddr(rule), _daddr(rule)
        if owner is not None and source and dest:
            moved.setdefault(owner, []).append(ip_interface(f"{source}/{dest.split('/')[1]}"))
    for (network, ifname, container_id), addrs in moved.items():
        Iptables(run_dir).add(network, container_id, ifname, addrs)
        nft.delete(network, container_id, ifname)
        report.append(f"masquerade: {container_id}/{ifname} on {network}: moved from nftables to iptables")


def _owner(comment: str) -> tuple[str, str, str] | None:
    """(network, ifname, containerID) from the reference's comment `<hash>, net: N, if: I, id: C`."""
    parts = dict(p.split(": ", 1) for p in comment.split(", ")[1:] if ": " in p)
    if {"net", "if", "id"} <= parts.keys():
        return parts["net"], parts["if"], parts["id"]
    return None


def _daddr(rule: dict[str, object]) -> str:
    for expr in rule.get("expr", []) or []:  # type: ignore[attr-defined]
        match = expr.get("match") if isinstance(expr, dict) else None
        if isinstance(match, dict) and match.get("op") == "!=":
            right = match.get("right")
            if isinstance(right, dict) and "prefix" in right:
                return f"{right['prefix']['addr']}/{right['prefix']['len']}"
    return ""
