"""Masquerade in nftables, written exactly as the reference bridge plugin (v1.5 and later) writes it.

The reference (`pkg/ip/ipmasq_nftables_linux.go`, through knftables) keeps `table inet
cni_plugins_masquerade`: a `postrouting` nat chain that returns multicast and jumps (`goto`) to
`masq_checks`, where each pod address has one rule `ip saddr == <IP> ip daddr != <subnet>
masquerade`, commented `<hash(network)>-<hash(ifname:containerID)>, net: .., if: .., id: ..`
(hashes: the first 16 hex digits of sha512). Its DEL and GC find rules by that comment's prefix,
so the reference removes what we add and we remove what it added, per attachment, without
addresses. Unlike the reference we also remove the table with its last rule, so a node is left
as it was before the first pod; that happens under a per-node lock (the kernel lets a batch
delete a chain that still has rules, so "empty?" and "delete" must not interleave with an ADD).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pycni.cni.ipaddr import IPInterface
from pycni.net import fwtool
from pycni.net.lock import flock, resource_lock

FAMILY = "inet"
TABLE = "cni_plugins_masquerade"
CHAIN = "masq_checks"
WHERE = f"{FAMILY} {TABLE}"
#: knftables' `CommentLengthMax`: longer comments are cut there.
COMMENT_MAX = 128
TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
CHAIN_COMMENT = "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"


def _hash16(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:16]


def network_hash(network: str) -> str:
    return _hash16(network)


def instance_hash(network: str, ifname: str, container_id: str) -> str:
    return f"{network_hash(network)}-{_hash16(f'{ifname}:{container_id}')}"


def comment(network: str, ifname: str, container_id: str) -> str:
    def clean(text: str) -> str:
        return text.replace('"', "")

    text = (
        f"{instance_hash(network, ifname, container_id)}, net: {clean(network)}, "
        f"if: {clean(ifname)}, id: {clean(container_id)}"
    )
    return text[:COMMENT_MAX]


def _scaffold() -> list[str]:
    """The table, both chains and postrouting's rules, as the reference (re)writes them every ADD."""
    return [
        f'add table {WHERE} {{ comment "{TABLE_COMMENT}" ; }}',
        f'add chain {WHERE} {CHAIN} {{ comment "{CHAIN_COMMENT}" ; }}',
        f"add chain {WHERE} postrouting {{ type nat hook postrouting priority 100 ; }}",
        f"flush chain {WHERE} postrouting",
        f"add rule {WHERE} postrouting ip daddr == 224.0.0.0/4  return",
        f"add rule {WHERE} postrouting ip6 daddr == ff00::/8  return",
        f"add rule {WHERE} postrouting goto {CHAIN}",
    ]


class Nftables:
    name = "nftables"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _table_lock(self) -> AbstractContextManager[None]:
        return flock(
            resource_lock(self.run_dir, "nftables", f"{FAMILY} {TABLE}"), what=f"nftables table {TABLE}"
        )

    def add(self, network: str, container_id: str, ifname: str, addrs: list[IPInterface]) -> None:
        note = comment(network, ifname, container_id)
        lines = _scaffold()
        with self._table_lock():
            prefix = instance_hash(network, ifname, container_id)
            lines += [
                f"delete rule {WHERE} {CHAIN} handle {h}" for h, c, _ in self._rules() if c.startswith(prefix)
            ]
            for addr in addrs:
                fam = "ip" if addr.version == 4 else "ip6"
                lines.append(
                    f"add rule {WHERE} {CHAIN} {fam} saddr == {addr.ip} {fam} daddr != {addr.network} "
                    f'masquerade comment "{note}"'
                )
            fwtool.run(["nft", "-f", "-"], "\n".join(lines) + "\n")

    def _all_rules(self) -> list[dict[str, Any]] | None:
        """Every rule of `masq_checks`; None when the table or chain does not exist."""
        text = fwtool.listing(["nft", "-j", "list", "chain", FAMILY, TABLE, CHAIN], fwtool.NFT_MISSING)
        if text is None:
            return None
        return [item["rule"] for item in json.loads(text).get("nftables", []) if "rule" in item]

    def _rules(self) -> list[tuple[int, str, str]]:
        """(handle, comment, source address) of every commented rule of `masq_checks`."""
        return [
            (int(rule["handle"]), rule["comment"], fwtool.nft_saddr(rule))
            for rule in self._all_rules() or []
            if rule.get("comment")
        ]

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        prefix = instance_hash(network, ifname, container_id)
        self._delete_where(lambda c: c.startswith(prefix))

    def addresses(self, network: str, container_id: str, ifname: str) -> set[str]:
        prefix = instance_hash(network, ifname, container_id)
        return {addr for _, c, addr in self._rules() if c.startswith(prefix) and addr}

    def collect(self, network: str, valid: set[tuple[str, str]]) -> None:
        keep = {instance_hash(network, ifname, cid) for cid, ifname in valid}
        prefix = network_hash(network) + "-"
        self._delete_where(lambda c: c.startswith(prefix) and c.split(",", 1)[0] not in keep)

    def _delete_where(self, doomed_comment: Any) -> None:
        found = False

        def handles() -> list[int]:
            nonlocal found
            listed = [h for h, c, _ in self._rules() if doomed_comment(c)]
            found = found or bool(listed)
            return listed

        def remove(doomed: Any) -> None:
            fwtool.run(
                ["nft", "-f", "-"], "".join(f"delete rule {WHERE} {CHAIN} handle {h}\n" for h in doomed)
            )

        fwtool.remove_all(handles, remove)
        if found:  # (also when a concurrent deleter removed them first: the table may be empty now)
            self.drop_if_empty()

    def drop_if_empty(self) -> None:
        """Remove the table once `masq_checks` holds no rule, under the table's lock."""
        with self._table_lock():
            if self._all_rules() == []:
                fwtool.run(["nft", "-f", "-"], f"delete table {WHERE}\n")
