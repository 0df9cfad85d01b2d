"""Masquerade rules for pod addresses, tagged per attachment so DEL and GC remove exactly ours.

Every rule carries a comment `pycni/<hash(network)>/<hash(container_id, ifname)>`: DEL finds
an attachment's rules by tag without knowing its addresses (so it works when the netns is
gone), and GC finds a network's rules whose attachment is not in the valid list.

Backends: iptables (a chain per attachment, as the reference, changed with `iptables-restore
--noflush`; the default where its tools exist) and nftables (one table of ours, changed in
atomic `nft -f` batches, and removed with its last rule).
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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pycni.cni.errors import InternalError
from pycni.cni.ipaddr import IPInterface
from pycni.net.lock import flock, resource_lock

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
    """One nftables base chain of ours, in a table of its own, whose rules are tagged by attachment.

    The table exists only while the chain has rules. Making it and adding a rule, and removing
    it once empty, happen under a per-node lock (`run_dir`): the kernel lets a batch delete a
    chain that still has rules, so "is it empty?" and "delete it" must not interleave with an ADD.
    """

    def __init__(self, family: str, table: str, chain: str, spec: str, run_dir: Path) -> None:
        self.family, self.table, self.chain, self.spec = family, table, chain, spec
        self.run_dir = run_dir

    def _table_lock(self) -> AbstractContextManager[None]:
        path = resource_lock(self.run_dir, "nftables", f"{self.family} {self.table}")
        return flock(path, what=f"nftables table {self.family} {self.table}")

    def add_rules(self, rules: list[str], tag: str) -> None:
        where = f"{self.family} {self.table}"
        lines = [f"add table {where}", f"add chain {where} {self.chain} {{ {self.spec} }}"]
        lines += [f'add rule {where} {self.chain} {rule} comment "{tag}"' for rule in rules]
        with self._table_lock():
            _run(["nft", "-f", "-"], "\n".join(lines) + "\n")

    def _all_rules(self) -> list[dict[str, Any]] | None:
        """Every rule of the chain; None when the table or chain does not exist."""
        listing = _listing(["nft", "-j", "list", "chain", self.family, self.table, self.chain], NFT_MISSING)
        if listing is None:
            return None
        return [item["rule"] for item in json.loads(listing).get("nftables", []) if "rule" in item]

    def _rules(self) -> list[tuple[int, str]]:
        """(handle, tag) of our rules; none when the table or chain does not exist."""
        return [
            (int(rule["handle"]), rule["comment"])
            for rule in self._all_rules() or []
            if rule.get("comment", "").startswith("pycni/")
        ]

    def tags(self) -> set[str]:
        return {comment for _, comment in self._rules()}

    def delete_tags(self, tags: set[str]) -> None:
        """Remove the rules tagged `tags`; then the table too, if that left its chain empty."""
        where = f"{self.family} {self.table} {self.chain}"
        found = False

        def handles() -> list[int]:
            nonlocal found
            listed = [h for h, comment in self._rules() if comment in tags]
            found = found or bool(listed)
            return listed

        def delete(doomed: Sequence[int]) -> None:
            _run(["nft", "-f", "-"], "".join(f"delete rule {where} handle {h}\n" for h in doomed))

        remove_all(handles, delete)
        if found:  # (also when a concurrent deleter removed them first: the table may be empty now)
            self.drop_if_empty()

    def drop_if_empty(self) -> None:
        """Remove our table once its chain holds no rule, so no empty table outlives the last pod.

        Under the table's lock, so no ADD adds a rule between the look and the removal (the
        kernel lets a batch delete a chain that still has rules: no EBUSY to rely on); an ADD
        after it makes the table again.
        """
        with self._table_lock():
            if self._all_rules() == []:
                _run(["nft", "-f", "-"], f"delete table {self.family} {self.table}\n")


class Nftables(NftChain):
    name = "nftables"

    def __init__(self, run_dir: Path) -> None:
        spec = "type nat hook postrouting priority srcnat; policy accept;"
        super().__init__("inet", NFT_TABLE, NFT_CHAIN, spec, run_dir)

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


def spoofcheck_chain(run_dir: Path) -> NftChain:
    """`macspoofchk`: frames entering from a pod's port must carry the pod's MAC."""
    spec = "type filter hook prerouting priority -300; policy accept;"
    return NftChain("bridge", "pycni_spoofcheck", "prerouting", spec, run_dir)


def setup_spoofcheck(owner: RuleOwner, host_ifname: str, mac: str, run_dir: Path) -> None:
    rule = f'iifname "{host_ifname}" ether saddr != {mac} drop'
    spoofcheck_chain(run_dir).add_rules([rule], owner.tag)


def teardown_spoofcheck(owner: RuleOwner, run_dir: Path) -> None:
    if shutil.which("nft"):
        spoofcheck_chain(run_dir).delete_tags({owner.tag})


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


def available(run_dir: Path) -> list[Backend]:
    """The backends whose tools exist here; teardown and GC sweep all of them."""
    found: list[Backend] = []
    if shutil.which("nft"):
        found.append(Nftables(run_dir))
    if shutil.which("iptables-restore"):
        found.append(Iptables())
    return found


def choose(explicit: str | None, run_dir: Path) -> Backend:
    """`ipMasqBackend` when given; else iptables if its tools exist, else nftables.

    The reference plugins choose the same way, and so do the runtimes beside them (podman's
    `portmap`/`firewall`, kube-proxy in iptables mode): rules of one pod in one backend.
    """
    backends = {b.name: b for b in available(run_dir)}
    if explicit:
        if explicit not in backends:
            raise InternalError(f"ipMasqBackend {explicit!r} requested but its tools are not installed")
        return backends[explicit]
    if not backends:
        raise InternalError("ipMasq needs nft or iptables, and neither is installed")
    return backends.get("iptables") or backends["nftables"]


def setup_masq(owner: RuleOwner, addrs: list[IPInterface], explicit: str | None, run_dir: Path) -> None:
    choose(explicit, run_dir).add(owner, addrs)


def teardown_masq(owner: RuleOwner, run_dir: Path) -> None:
    for backend in available(run_dir):
        backend.delete(owner)


def gc_rules(network: str, keep: set[str], run_dir: Path) -> None:
    """Remove every masquerade and spoof-check rule of `network` whose attachment is not kept."""
    chains: list[Backend | NftChain] = [*available(run_dir)]
    if shutil.which("nft"):
        chains.append(spoofcheck_chain(run_dir))
    for chain in chains:
        doomed = stale_tags(chain.tags(), network, keep)
        if doomed:
            chain.delete_tags(doomed)
