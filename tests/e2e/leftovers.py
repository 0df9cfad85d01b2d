"""What a pod may not leave on its node once its runtime removed it, from either plugin set.

Per-attachment state only: links (veths), IP reservations, masquerade rules (ours, tagged
`pycni/...`, and the reference's `CNI-<hash>` chains with their `id: "<container>"` comment),
multus plans and caches, libcni's result cache, our lock files and the pods' netns files. Shared
per-node state the reference keeps too (the bridge, portmap's CNI-HOSTPORT-* chains) stays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.netns import Netns

#: libcni's result cache (go-cni and podman's libcni keep it here on the host).
LIBCNI_RESULTS = Path("/var/lib/cni/results")
IPAM_BOOKKEEPING = re.compile(r"^(lock|last_reserved_ip\.\d+)$")
#: A per-attachment iptables line: ours (tagged, or our chain), or the reference's (its `CNI-<hash>`
#: chain, or a rule with its `id: "<container>"` comment).
PER_ATTACHMENT = re.compile(r'pycni/|^:PYCNI-|^:CNI-[0-9a-f]{24} |id: "\w+"')
#: A per-attachment nftables line: tagged by an earlier pycni, or in the reference's format, which
#: ours writes too (its masquerade comment `<hash>, net: .., if: .., id: ..`, `macspoofchk-`).
NFT_PER_ATTACHMENT = re.compile(r"pycni/|, net: .*, id: |macspoofchk-")
#: Our host-local's index of its reservations, a cache rebuilt from them (ipam/host_local/index.py).
IPAM_INDEX = ".pycni"


@dataclass(frozen=True)
class Node:
    """A node netns and the private dirs its plugins were given."""

    ns: Netns
    ipam_dir: Path
    run_dir: Path
    multus_dir: Path | None = None

    def veths(self) -> list[str]:
        return sorted(name for name in self.ns.link_names() if name.startswith("veth"))

    def reservations(self) -> list[str]:
        if not self.ipam_dir.exists():
            return []
        return sorted(
            f"{net.name}/{entry.name}"
            for net in self.ipam_dir.iterdir()
            if net.is_dir() and net.name != IPAM_INDEX
            for entry in net.iterdir()
            if not IPAM_BOOKKEEPING.match(entry.name)
        )

    def rules(self) -> list[str]:
        """Per-attachment masquerade rules in iptables (v4, v6) and nftables."""
        found = []
        for tool in ("iptables-save", "ip6tables-save"):
            lines = self.ns.run(tool, "-t", "nat").splitlines()
            found += [line for line in lines if PER_ATTACHMENT.search(line)]
        found += [
            line.strip()
            for line in self.ns.run("nft", "list", "ruleset").splitlines()
            if NFT_PER_ATTACHMENT.search(line)
        ]
        return found

    def pod_lock_files(self) -> list[str]:
        """Lock files of pods (attachments, multus pods); a node's bridges keep theirs."""
        locks = self.run_dir / "locks"
        if not locks.exists():
            return []
        return sorted(p.name for p in locks.iterdir() if p.name.startswith(("attachment-", "multus-")))

    def multus_state(self) -> list[str]:
        """Plans, cached results and network-status files left in multus's cniDir."""
        if self.multus_dir is None or not self.multus_dir.exists():
            return []
        return sorted(str(p.relative_to(self.multus_dir)) for p in self.multus_dir.rglob("*") if p.is_file())

    def assert_clean(self, sandbox_ids: Iterable[str], netns_paths: Iterable[str]) -> None:
        """Nothing of these pods is left on the node."""
        ids = list(sandbox_ids)
        assert self.veths() == [], f"veths left: {self.veths()}"
        assert self.reservations() == [], f"IP reservations left: {self.reservations()}"
        assert self.rules() == [], f"masquerade rules left: {self.rules()}"
        assert self.multus_state() == [], f"multus state left: {self.multus_state()}"
        cached = [p.name for p in LIBCNI_RESULTS.glob("*") if any(i in p.name for i in ids)]
        assert cached == [], f"libcni result cache left: {cached}"
        netns_left = [p for p in netns_paths if Path(p).exists()]
        assert netns_left == [], f"netns files left: {netns_left}"
        assert self.pod_lock_files() == [], f"lock files left: {self.pod_lock_files()}"
