"""The rules earlier versions of pycni wrote, which DEL, CHECK and GC still find and remove.

Before pycni wrote its rules the way the reference plugins do, each carried a tag
`pycni/<hash(network)>/<hash(containerID, ifname)>`: masquerade in `table inet pycni_masquerade`
(nftables) or in a chain `PYCNI-<hash(tag)>` jumped to from POSTROUTING (iptables), spoof checks
in `table bridge pycni_spoofcheck`. Pods attached then may still run on a node that upgraded, so
their DEL must still remove them; nothing here adds a rule any more.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pycni.net import fwtool
from pycni.net.lock import flock, resource_lock


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def network_tag(network: str) -> str:
    return f"pycni/{_h(network)}"


def attachment_hash(container_id: str, ifname: str) -> str:
    return _h(f"{container_id}\0{ifname}")


def tag(network: str, container_id: str, ifname: str) -> str:
    return f"{network_tag(network)}/{attachment_hash(container_id, ifname)}"


def stale_tags(tags: Iterable[str], network: str, valid: set[tuple[str, str]]) -> set[str]:
    """Tags of `network` whose attachment is not one of `valid` ((containerID, ifname) pairs)."""
    keep = {attachment_hash(cid, ifname) for cid, ifname in valid}
    prefix = network_tag(network) + "/"
    return {t for t in tags if t.startswith(prefix) and t[len(prefix) :] not in keep}


class NftChain:
    """One nftables base chain of ours, in a table of its own, whose rules are tagged by attachment.

    The table goes with its last rule, under a per-node lock (`run_dir`).
    """

    def __init__(self, family: str, table: str, chain: str, run_dir: Path) -> None:
        self.family, self.table, self.chain = family, table, chain
        self.run_dir = run_dir

    def _table_lock(self) -> AbstractContextManager[None]:
        path = resource_lock(self.run_dir, "nftables", f"{self.family} {self.table}")
        return flock(path, what=f"nftables table {self.family} {self.table}")

    def _all_rules(self) -> list[dict[str, Any]] | None:
        argv = ["nft", "-j", "list", "chain", self.family, self.table, self.chain]
        listing = fwtool.listing(argv, fwtool.NFT_MISSING)
        if listing is None:
            return None
        return [item["rule"] for item in json.loads(listing).get("nftables", []) if "rule" in item]

    def _rules(self) -> list[tuple[int, str]]:
        return [
            (int(rule["handle"]), rule["comment"])
            for rule in self._all_rules() or []
            if rule.get("comment", "").startswith("pycni/")
        ]

    def tags(self) -> set[str]:
        if not shutil.which("nft"):
            return set()
        return {comment for _, comment in self._rules()}

    def delete_tags(self, tags: set[str]) -> None:
        if not shutil.which("nft"):
            return
        where = f"{self.family} {self.table} {self.chain}"
        found = False

        def handles() -> list[int]:
            nonlocal found
            listed = [h for h, comment in self._rules() if comment in tags]
            found = found or bool(listed)
            return listed

        def delete(doomed: Sequence[int]) -> None:
            fwtool.run(["nft", "-f", "-"], "".join(f"delete rule {where} handle {h}\n" for h in doomed))

        fwtool.remove_all(handles, delete)
        if found:
            with self._table_lock():
                if self._all_rules() == []:
                    fwtool.run(["nft", "-f", "-"], f"delete table {self.family} {self.table}\n")


def nft_masquerade(run_dir: Path) -> NftChain:
    return NftChain("inet", "pycni_masquerade", "postrouting", run_dir)


def nft_spoofcheck(run_dir: Path) -> NftChain:
    return NftChain("bridge", "pycni_spoofcheck", "prerouting", run_dir)


class IptablesChains:
    """`PYCNI-` chains jumped to from POSTROUTING by a rule commented with the tag."""

    def _jumps(self, version: int) -> list[tuple[str, fwtool.IptRule]]:
        rules = fwtool.nat_rules(version) or []
        return [
            (rule.comment, rule)
            for rule in rules
            if rule.chain == "POSTROUTING" and rule.comment.startswith("pycni/")
        ]

    def tags(self) -> set[str]:
        return {tag for v in (4, 6) for tag, _ in self._jumps(v)}

    def addresses(self, tag: str) -> set[str]:
        return {rule.source.split("/")[0] for v in (4, 6) for t, rule in self._jumps(v) if t == tag}

    def delete_tags(self, tags: set[str]) -> None:
        for version in (4, 6):

            def jumps(version: int = version) -> list[fwtool.IptRule]:
                return [rule for tag, rule in self._jumps(version) if tag in tags]

            def delete(doomed: Sequence[fwtool.IptRule], version: int = version) -> None:
                lines = [rule.deletion for rule in doomed]
                for chain in sorted({rule.target for rule in doomed}):
                    lines += [f"-F {chain}", f"-X {chain}"]
                fwtool.restore(version, lines)

            fwtool.remove_all(jumps, delete)


class Legacy:
    """Every earlier format at once: what DEL, CHECK and GC look at besides the current rules."""

    def __init__(self, run_dir: Path) -> None:
        self.nft = nft_masquerade(run_dir)
        self.spoof = nft_spoofcheck(run_dir)
        self.iptables = IptablesChains()

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        tags = {tag(network, container_id, ifname)}
        self.nft.delete_tags(tags)
        self.iptables.delete_tags(tags)

    def delete_spoofcheck(self, network: str, container_id: str, ifname: str) -> None:
        self.spoof.delete_tags({tag(network, container_id, ifname)})

    def addresses(self, network: str, container_id: str, ifname: str) -> set[str]:
        """The masqueraded addresses our earlier rules name (the nft rules: by their `saddr`)."""
        wanted = tag(network, container_id, ifname)
        found = self.iptables.addresses(wanted) if fwtool.has_iptables() else set()
        if shutil.which("nft"):
            for rule in self.nft._all_rules() or []:
                if rule.get("comment") == wanted and fwtool.nft_saddr(rule):
                    found.add(fwtool.nft_saddr(rule))
        return found

    def collect(self, network: str, valid: set[tuple[str, str]]) -> None:
        for chain in (self.nft, self.spoof):
            doomed = stale_tags(chain.tags(), network, valid)
            if doomed:
                chain.delete_tags(doomed)
        if fwtool.has_iptables():
            doomed = stale_tags(self.iptables.tags(), network, valid)
            if doomed:
                self.iptables.delete_tags(doomed)
