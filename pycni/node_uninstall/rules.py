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


def nftables_to_iptables(run_dir: Path, cached: list[CachedAttachment], report: list[str]) -> None:
    nft = masq_nftables.Nftables(run_dir)
    moved: dict[tuple[str, str, str], list[IPInterface]] = {}
    unknown: set[str] = set()
    for rule in nft._all_rules() or []:
        comment = str(rule.get("comment", ""))
        owner = _owner(comment, cached)
        source, dest = fwtool.nft_saddr(rule), _daddr(rule)
        if owner is None:
            unknown.add(comment.split(",", 1)[0])
        elif source and dest:
            moved.setdefault(owner, []).append(ip_interface(f"{source}/{dest.split('/')[1]}"))
    for (network, ifname, container_id), addrs in moved.items():
        Iptables(run_dir).add(network, container_id, ifname, addrs)
        nft.delete(network, container_id, ifname)
        report.append(f"masquerade: {container_id}/{ifname} on {network}: moved from nftables to iptables")
    for tag in sorted(unknown):
        report.append(f"masquerade: nftables rules {tag} belong to no known attachment: left in place")


def _owner(comment: str, cached: list[CachedAttachment]) -> tuple[str, str, str] | None:
    """(network, ifname, containerID) of a rule by the reference's comment `<hash>, net: N, if: I,
    id: C`, cut at 128 characters: read from it when it is whole (the comment those names make is
    the rule's), else found by its hash among the cached attachments; None when neither."""
    parts = dict(p.split(": ", 1) for p in comment.split(", ")[1:] if ": " in p)
    if {"net", "if", "id"} <= parts.keys():
        owner = parts["net"], parts["if"], parts["id"]
        if masq_nftables.comment(*owner) == comment:
            return owner
    tag = comment.split(",", 1)[0]
    for entry in cached:
        if masq_nftables.instance_hash(entry.network, entry.ifname, entry.container_id) == tag:
            return entry.network, entry.ifname, entry.container_id
    return None


def _daddr(rule: dict[str, object]) -> str:
    for expr in rule.get("expr", []) or []:  # type: ignore[attr-defined]
        match = expr.get("match") if isinstance(expr, dict) else None
        if isinstance(match, dict) and match.get("op") == "!=":
            right = match.get("right")
            if isinstance(right, dict) and "prefix" in right:
                return f"{right['prefix']['addr']}/{right['prefix']['len']}"
    return ""
