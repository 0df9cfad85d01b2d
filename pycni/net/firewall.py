"""Masquerade rules for pod addresses, tagged per attachment so DEL and GC remove exactly ours.

Every rule carries a comment `pycni/<hash(network)>/<hash(container_id, ifname)>`: DEL finds
an attachment's rules by tag without knowing its addresses (so it works when the netns is
gone), and GC finds a network's rules whose attachment is not in the valid list.

Backends: nftables (one table of ours, changed in atomic `nft -f` batches) and iptables
(a chain per attachment, as the reference, changed with `iptables-restore --noflush`).
Both go through the distributions' own tools; there is no netlink library for nf_tables
rule building in Python that we would rather depend on.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pycni.cni.errors import InternalError
from pycni.cni.ipaddr import IPInterface

NFT_TABLE = "pycni_masquerade"
NFT_CHAIN = "postrouting"
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RuleOwner:
    """The attachment whose rules carry `tag`: one network, one container, one interface."""

    network: str
    container_id: str
    ifname: str

    @property
    def tag(self) -> str:
        return f"{network_tag(self.network)}/{attachment_hash(self.container_id, self.ifname)}"


def network_tag(network: str) -> str:
    return f"pycni/{_h(network)}"


def attachment_hash(container_id: str, ifname: str) -> str:
    return _h(f"{container_id}\0{ifname}")


def stale_tags(tags: Iterable[str], network: str, keep: set[str]) -> set[str]:
    """Tags of `network` whose attachment hash is not in `keep`."""
    prefix = network_tag(network) + "/"
    return {t for t in tags if t.startswith(prefix) and t[len(prefix) :] not in keep}


def _run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise _failed(argv, proc)
    return proc.stdout


# What the tools print when the table (or nftables chain) to list does not exist: nft reports
# ENOENT, iptables-save names the table (or asks for a module to be loaded).
NFT_MISSING = re.compile(r"^Error: No such file or directory", re.MULTILINE)
IPTABLES_MISSING = re.compile(r"[Tt]able .*does not exist")


def _listing(argv: list[str], missing: re.Pattern[str]) -> str | None:
    """A listing tool's stdout; None when it failed because the table or chain does not exist.

    Any other failure raises: reading it as "no rules" would let DEL and GC leave rules behind
    and report success.
    """
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return proc.stdout
    if missing.search(proc.stderr):
        return None
    raise _failed(argv, proc)


R = TypeVar("R", bound=Hashable)


def remove_all(find: Callable[[], Sequence[R]], remove: Callable[[Sequence[R]], None]) -> None:
    """Remove everything `find` lists, also when another process removes some of it meanwhile.

    Removal goes by what a listing found (nftables rule handles, iptables rule specs), in one
    atomic batch that fails whole when any part of it is already gone: a DEL racing a GC, or
    another DEL of the same attachment, removed it between our listing and our batch. Then
    list again and remove what is left. A failure after which nothing was removed by anyone
    else is a real one and raises.
    """
    doomed = list(find())
    while doomed:
        try:
            remove(doomed)
            return
        except InternalError:
            left = list(find())
            if not set(left) < set(doomed):
                raise
            doomed = left


def _failed(argv: list[str], proc: subprocess.CompletedProcess[str]) -> InternalError:
    return InternalError(
        f"{argv[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}", f"exit {proc.returncode}"
    )


class Backend(Protocol):
    name: str

    def add(self, owner: RuleOwner, addrs: list[IPInterface]) -> None: ...

    def delete(self, owner: RuleOwner) -> None: ...

    def tags(self) -> set[str]: ...

    def delete_tags(self, tags: set[str]) -> None: ...


class NftChain:
    """One nftables base chain of ours whose rules are tagged by attachment."""

    def __init__(self, family: str, table: str, chain: str, spec: str) -> None:
        self.family, self.table, self.chain, self.spec = family, table, chain, spec

    def add_rules(self, rules: list[str], tag: str) -> None:
        where = f"{self.family} {self.table}"
        lines = [f"add table {where}", f"add chain {where} {self.chain} {{ {self.spec} }}"]
        lines += [f'add rule {where} {self.chain} {rule} comment "{tag}"' for rule in rules]
        _run(["nft", "-f", "-"], "\n".join(lines) + "\n")

    def _rules(self) -> list[tuple[int, str]]:
        """(handle, tag) of our rules; none when the table or chain does not exist."""
        listing = _listing(["nft", "-j", "list", "chain", self.family, self.table, self.chain], NFT_MISSING)
        if listing is None:
            return []
        found = []
        for item in json.loads(listing).get("nftables", []):
            rule = item.get("rule")
            if rule and rule.get("comment", "").startswith("pycni/"):
                found.append((int(rule["handle"]), rule["comment"]))
        return found

    def tags(self) -> set[str]:
        return {comment for _, comment in self._rules()}

    def delete_tags(self, tags: set[str]) -> None:
        where = f"{self.family} {self.table} {self.chain}"

        def handles() -> list[int]:
            return [h for h, comment in self._rules() if comment in tags]

        def delete(doomed: Sequence[int]) -> None:
            _run(["nft", "-f", "-"], "".join(f"delete rule {where} handle {h}\n" for h in doomed))

        remove_all(handles, delete)


class Nftables(NftChain):
    name = "nftables"

    def __init__(self) -> None:
        super().__init__(
            "inet", NFT_TABLE, NFT_CHAIN, "type nat hook postrouting priority srcnat; policy accept;"
        )

    def add(self, owner: RuleOwner, addrs: list[IPInterface]) -> None:
        rules = []
        for addr in addrs:
            fam = "ip" if addr.version == 4 else "ip6"
            rules.append(
                f"{fam} saddr {addr.ip} {fam} daddr != {addr.network} "
                f"{fam} daddr != {MULTICAST[addr.version]} masquerade"
            )
        self.add_rules(rules, owner.tag)

    def delete(self, owner: RuleOwner) -> None:
        self.delete_tags({owner.tag})


def spoofcheck_chain() -> NftChain:
    """`macspoofchk`: frames entering from a pod's port must carry the pod's MAC."""
    return NftChain(
        "bridge",
        "pycni_spoofcheck",
        "prerouting",
        "type filter hook prerouting priority -300; policy accept;",
    )


def setup_spoofcheck(owner: RuleOwner, host_ifname: str, mac: str) -> None:
    spoofcheck_chain().add_rules([f'iifname "{host_ifname}" ether saddr != {mac} drop'], owner.tag)


def teardown_spoofcheck(owner: RuleOwner) -> None:
    if shutil.which("nft"):
        spoofcheck_chain().delete_tags({owner.tag})


class Iptables:
    """A chain per attachment (`PYCNI-<hash>`) jumped to from POSTROUTING, as the reference does."""

    name = "iptables"

    def __init__(self) -> None:
        self.tools = {
            4: ("iptables", "iptables-restore", "iptables-save"),
            6: ("ip6tables", "ip6tables-restore", "ip6tables-save"),
        }

    @staticmethod
    def chain(owner: RuleOwner) -> str:
        return "PYCNI-" + hashlib.sha256(owner.tag.encode()).hexdigest()[:22]  # 28 chars, iptables' limit

    def add(self, owner: RuleOwner, addrs: list[IPInterface]) -> None:
        chain = self.chain(owner)
        for version in (4, 6):
            mine = [a for a in addrs if a.version == version]
            if not mine:
                continue
            lines = ["*nat", f":{chain} - [0:0]"]
            for addr in mine:
                lines += [
                    f"-A {chain} -d {addr.network} -j ACCEPT",
                    f"-A {chain} ! -d {MULTICAST[version]} -j MASQUERADE",
                    f'-A POSTROUTING -s {addr.ip} -m comment --comment "{owner.tag}" -j {chain}',
                ]
            _run([self.tools[version][1], "-w", "5", "--noflush"], "\n".join([*lines, "COMMIT", ""]))

    def _jumps(self, version: int) -> list[tuple[str, str, str]]:
        """(tag, chain, rule spec) of our POSTROUTING jumps; none without the tool or a nat table."""
        save = shutil.which(self.tools[version][2])
        if save is None:
            return []
        listing = _listing([save, "-t", "nat"], IPTABLES_MISSING)
        if listing is None:
            return []
        found = []
        for line in listing.splitlines():
            if line.startswith("-A POSTROUTING") and '--comment "pycni/' in line:
                tag = line.split('--comment "', 1)[1].split('"', 1)[0]
                chain = line.rsplit("-j ", 1)[1].strip()
                found.append((tag, chain, line[len("-A POSTROUTING ") :]))
        return found

    def tags(self) -> set[str]:
        return {tag for v in (4, 6) for tag, _, _ in self._jumps(v)}

    def delete_tags(self, tags: set[str]) -> None:
        for version in (4, 6):

            def jumps(version: int = version) -> list[tuple[str, str]]:
                return [(chain, spec) for tag, chain, spec in self._jumps(version) if tag in tags]

            def delete(doomed: Sequence[tuple[str, str]], version: int = version) -> None:
                lines = ["*nat", *(f"-D POSTROUTING {spec}" for _, spec in doomed)]
                for chain in sorted({c for c, _ in doomed}):
                    lines += [f"-F {chain}", f"-X {chain}"]
                _run([self.tools[version][1], "-w", "5", "--noflush"], "\n".join([*lines, "COMMIT", ""]))

            remove_all(jumps, delete)

    def delete(self, owner: RuleOwner) -> None:
        self.delete_tags({owner.tag})


def available() -> list[Backend]:
    """The backends whose tools exist here; teardown and GC sweep all of them."""
    found: list[Backend] = []
    if shutil.which("nft"):
        found.append(Nftables())
    if shutil.which("iptables-restore"):
        found.append(Iptables())
    return found


def choose(explicit: str | None) -> Backend:
    """`ipMasqBackend` when given; else nftables if `nft` exists, else iptables."""
    backends = {b.name: b for b in available()}
    if explicit:
        if explicit not in backends:
            raise InternalError(f"ipMasqBackend {explicit!r} requested but its tools are not installed")
        return backends[explicit]
    if not backends:
        raise InternalError("ipMasq needs nft or iptables, and neither is installed")
    return backends.get("nftables") or backends["iptables"]


def setup_masq(owner: RuleOwner, addrs: list[IPInterface], explicit: str | None) -> None:
    choose(explicit).add(owner, addrs)


def teardown_masq(owner: RuleOwner) -> None:
    for backend in available():
        backend.delete(owner)


def gc_rules(network: str, keep: set[str]) -> None:
    """Remove every masquerade and spoof-check rule of `network` whose attachment is not kept."""
    chains: list[Backend | NftChain] = [*available()]
    if shutil.which("nft"):
        chains.append(spoofcheck_chain())
    for chain in chains:
        doomed = stale_tags(chain.tags(), network, keep)
        if doomed:
            chain.delete_tags(doomed)
