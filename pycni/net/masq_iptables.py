"""Masquerade in iptables, written exactly as the reference bridge plugin writes it.

The reference (containernetworking/plugins `pkg/ip/ipmasq_iptables_linux.go`) keeps a chain
per network and container, `CNI-` + the first 24 hex digits of sha512(network + containerID),
in the nat table: `-d <subnet> -j ACCEPT`, then `! -d <multicast> -j MASQUERADE`, each rule and
the POSTROUTING jump `-s <pod IP> -j <chain>` commented `name: "<network>" id: "<containerID>"`.
Its DEL deletes the jump by that exact spec, then flushes and deletes the chain. Writing the
same chain, jump and comment means a node rolled back to the reference plugins tears down what
we made, and we tear down what it made, from the chain's name and comment alone.

The reference ignores the interface name (two attachments of one network in one pod share a
chain). We keep each attachment apart inside the shared chain with a marker rule per address:
`-s <pod IP> -d <subnet> -m comment --comment 'pycni: if: "<ifname>"'`, a rule without a target,
which only counts packets. So DEL and GC without addresses (the netns gone) remove exactly one
attachment's jumps and markers, and the whole chain with its last attachment; the reference's
flush removes the markers with everything else. A chain without markers was made by the
reference: it is one attachment, whatever the interface.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from ipaddress import ip_interface
from pathlib import Path

from pycni.cni.ipaddr import IPInterface
from pycni.net import fwtool
from pycni.net.fwtool import IptRule
from pycni.net.lock import transient

MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
#: The reference's comment (`utils.FormatComment`), and its oldest spelling without the colon.
COMMENT = re.compile(r'^name:? "(?P<network>[^"]*)" id: "(?P<container_id>[^"]*)"$')
MARKER = re.compile(r'^pycni: if: "(?P<ifname>[^"]*)"$')


def chain_name(network: str, container_id: str) -> str:
    """The reference's `utils.FormatChainName`: 28 characters, iptables' limit."""
    return "CNI-" + hashlib.sha512((network + container_id).encode()).hexdigest()[:24]


def comment(network: str, container_id: str) -> str:
    return f'name: "{network}" id: "{container_id}"'


def marker(ifname: str) -> str:
    return f'pycni: if: "{ifname}"'


@dataclass(frozen=True)
class Chain:
    """One network's and container's chain as the nat table of one IP version holds it."""

    name: str
    jumps: tuple[IptRule, ...]
    rules: tuple[IptRule, ...]

    def markers(self) -> dict[str, list[IPInterface]]:
        """The attachments we keep in the chain: interface name -> its addresses."""
        found: dict[str, list[IPInterface]] = {}
        for rule in self.rules:
            match = MARKER.match(rule.comment)
            if match and rule.source and rule.dest:
                address = ip_interface(f"{rule.source.split('/')[0]}/{rule.dest.split('/')[1]}")
                found.setdefault(match["ifname"], []).append(address)
        return found


def _chains(version: int, wanted: Iterable[str] | None = None) -> dict[str, Chain]:
    """The masquerade chains of one IP version (those jumped to with the reference's comment)."""
    rules = fwtool.nat_rules(version)
    if rules is None:
        return {}
    jumps: dict[str, list[IptRule]] = {}
    for rule in rules:
        if rule.chain == "POSTROUTING" and rule.target.startswith("CNI-") and COMMENT.match(rule.comment):
            jumps.setdefault(rule.target, []).append(rule)
    names = set(jumps) if wanted is None else set(wanted)
    return {
        name: Chain(name, tuple(jumps.get(name, ())), tuple(r for r in rules if r.chain == name))
        for name in names
        if name in jumps or any(r.chain == name for r in rules)
    }


class Iptables:
    """The reference's chains, one attachment per marker (see the module's docstring)."""

    name = "iptables"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _locked(self, chain: str) -> AbstractContextManager[None]:
        """The chain is one attachment's: its lock file goes with the holder, as a pod's does."""
        return transient(self.run_dir, "iptables", chain, what=f"iptables chain {chain}")

    def add(self, network: str, container_id: str, ifname: str, addrs: list[IPInterface]) -> None:
        chain = chain_name(network, container_id)
        note = fwtool.quote(comment(network, container_id))
        for version in (4, 6):
            mine = [a for a in addrs if a.version == version]
            if not mine:
                continue
            with self._locked(chain):
                have = _chains(version, [chain]).get(chain)
                fwtool.restore(version, _add_lines(chain, note, ifname, mine, have))

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        chain = chain_name(network, container_id)
        for version in (4, 6):
            self._leave(version, chain, lambda have: {ifname})

    def _leave(self, version: int, chain: str, leaving: Callable[[Chain], set[str]]) -> None:
        """Remove the attachments `leaving` names from `chain`, under the chain's lock; a listing
        that another remover (the reference's DEL) made stale is taken again."""
        with self._locked(chain):

            def lines() -> list[str]:
                have = _chains(version, [chain]).get(chain)
                return _leave_lines(have, leaving(have)) if have is not None else []

            fwtool.remove_all(lines, lambda doomed: fwtool.restore(version, list(doomed)))

    def addresses(self, network: str, container_id: str, ifname: str) -> set[str]:
        """The pod addresses whose traffic this attachment's rules masquerade (CHECK)."""
        chain = chain_name(network, container_id)
        found: set[str] = set()
        for version in (4, 6):
            have = _chains(version, [chain]).get(chain)
            if have is None or not any(r.target == "MASQUERADE" for r in have.rules):
                continue
            marked = have.markers()
            jumped = {r.source.split("/")[0] for r in have.jumps}
            if not marked:
                found |= jumped
            else:
                found |= {str(a.ip) for a in marked.get(ifname, [])} & jumped
        return found

    def collect(self, network: str, valid: set[tuple[str, str]]) -> None:
        """GC: the attachments of `network` not in `valid` ((containerID, ifname) pairs)."""
        for version in (4, 6):
            for chain in _chains(version).values():
                owner = _owner(chain)
                if owner is not None and owner[0] == network:
                    self._leave(version, chain.name, partial(_stale, container_id=owner[1], valid=valid))


def _stale(chain: Chain, container_id: str, valid: set[tuple[str, str]]) -> set[str]:
    """The interfaces of `chain` that are not valid; an unmarked chain (the reference's) is one
    attachment, stale unless its container has any valid attachment."""
    marked = chain.markers()
    if not marked:
        return set() if any(cid == container_id for cid, _ in valid) else {"*"}
    return {ifname for ifname in marked if (container_id, ifname) not in valid}


def _owner(chain: Chain) -> tuple[str, str] | None:
    for rule in chain.jumps:
        match = COMMENT.match(rule.comment)
        if match:
            return match["network"], match["container_id"]
    return None


def _add_lines(chain: str, note: str, ifname: str, mine: list[IPInterface], have: Chain | None) -> list[str]:
    """The batch adding one attachment's markers, ACCEPTs, MASQUERADE and jumps to `chain`."""
    markers = [
        f"-s {a.ip}/{a.max_prefixlen} -d {a.network} -m comment --comment {fwtool.quote(marker(ifname))}"
        for a in mine
    ]
    accepts = [
        f"-d {net} -m comment --comment {note} -j ACCEPT" for net in dict.fromkeys(a.network for a in mine)
    ]
    masq = f"! -d {MULTICAST[mine[0].version]} -m comment --comment {note} -j MASQUERADE"
    jumped = {r.source for r in have.jumps} if have else set()
    jumps = [
        f"-A POSTROUTING -s {a.ip}/{a.max_prefixlen} -m comment --comment {note} -j {chain}"
        for a in dict.fromkeys(mine)
        if f"{a.ip}/{a.max_prefixlen}" not in jumped
    ]
    if have is None:
        body = [*markers, *accepts, masq]
        return [f":{chain} - [0:0]", *(f"-A {chain} {rule}" for rule in body), *jumps]
    accepted = {r.dest for r in have.rules if r.target == "ACCEPT"}
    new_accepts = [a for a, net in zip(accepts, dict.fromkeys(a.network for a in mine), strict=True)
                   if str(net) not in accepted]  # fmt: skip
    # ahead of the MASQUERADE rule: markers and ACCEPTs must be met before it
    lines = [f"-I {chain} 1 {rule}" for rule in [*new_accepts, *markers]]
    if not any(r.target == "MASQUERADE" for r in have.rules):
        lines.append(f"-A {chain} {masq}")
    return [*lines, *jumps]


def _leave_lines(chain: Chain, leaving: set[str]) -> list[str]:
    """The batch removing the attachments `leaving` (interface names) from `chain`.

    With the last attachment (or an unmarked chain, the reference's) go every jump to the chain,
    its rules and the chain itself; otherwise only the leavers' jumps, markers and ACCEPTs that
    no one left needs.
    """
    if not leaving:
        return []
    marked = chain.markers()
    staying = {i: addrs for i, addrs in marked.items() if i not in leaving}
    if not staying:
        return [*(j.deletion for j in chain.jumps), f"-F {chain.name}", f"-X {chain.name}"]
    kept_ips = {f"{a.ip}/{a.max_prefixlen}" for addrs in staying.values() for a in addrs}
    kept_nets = {str(a.network) for addrs in staying.values() for a in addrs}
    lines = [j.deletion for j in chain.jumps if j.source not in kept_ips]
    for rule in chain.rules:
        found = MARKER.match(rule.comment)
        if (found and found["ifname"] in leaving) or (rule.target == "ACCEPT" and rule.dest not in kept_nets):
            lines.append(rule.deletion)
    return lines
