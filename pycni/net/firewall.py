"""Masquerade and spoof-check rules for pod attachments, in the reference plugins' own format.

A node may move between pycni and the reference plugins with pods running, so each side must
find and remove what the other made. Our rules are therefore the reference's, rule for rule:
masquerade in iptables (`pycni.net.masq_iptables`: a `CNI-<hash>` chain per network and
container) or nftables (`pycni.net.masq_nftables`: `table inet cni_plugins_masquerade`), spoof
checks in `table bridge nat` (`pycni.net.spoofcheck`). What the reference lacks we add inside
that format: teardown without addresses (the netns may be gone: the reference leaks there,
plugins#810), one attachment apart from another of the same pod, GC, CHECK of the rules.
Rules of earlier pycni versions (`pycni.net.fw_legacy`) are still torn down, checked and
collected, so a node upgraded with pods running leaks nothing.

Backend for ADD: `ipMasqBackend` when set; otherwise iptables when its tools
(`iptables-restore`) are installed, else nftables: the reference plugins choose the same way,
and so do the plugins and proxies beside them on a node (podman's `portmap` and `firewall`,
kube-proxy in iptables mode), so one node's rules are in one place. Teardown and GC sweep every
backend whose tools exist, and every format.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pycni.cni.errors import InternalError
from pycni.cni.ipaddr import IPInterface
from pycni.net import fw_legacy, fwtool, spoofcheck
from pycni.net.masq_iptables import Iptables
from pycni.net.masq_nftables import Nftables

__all__ = [
    "Backend",
    "RuleOwner",
    "available",
    "choose",
    "gc_rules",
    "masq_addresses",
    "setup_masq",
    "setup_spoofcheck",
    "teardown_masq",
    "teardown_spoofcheck",
]


@dataclass(frozen=True)
class RuleOwner:
    """The attachment whose rules these are: one network, one container, one interface."""

    network: str
    container_id: str
    ifname: str


class Backend(Protocol):
    name: str

    def add(self, network: str, container_id: str, ifname: str, addrs: list[IPInterface]) -> None: ...

    def delete(self, network: str, container_id: str, ifname: str) -> None: ...

    def addresses(self, network: str, container_id: str, ifname: str) -> set[str]: ...

    def collect(self, network: str, valid: set[tuple[str, str]]) -> None: ...


def available(run_dir: Path) -> list[Backend]:
    """The backends whose tools exist here; teardown, CHECK and GC look at all of them."""
    found: list[Backend] = []
    if shutil.which("nft"):
        found.append(Nftables(run_dir))
    if fwtool.has_iptables():
        found.append(Iptables(run_dir))
    return found


def choose(explicit: str | None, run_dir: Path) -> Backend:
    """`ipMasqBackend` when given; else iptables if its tools exist, else nftables."""
    backends = {b.name: b for b in available(run_dir)}
    if explicit:
        if explicit not in backends:
            raise InternalError(f"ipMasqBackend {explicit!r} requested but its tools are not installed")
        return backends[explicit]
    if not backends:
        raise InternalError("ipMasq needs nft or iptables, and neither is installed")
    return backends.get("iptables") or backends["nftables"]


def setup_masq(owner: RuleOwner, addrs: list[IPInterface], explicit: str | None, run_dir: Path) -> None:
    choose(explicit, run_dir).add(owner.network, owner.container_id, owner.ifname, addrs)


def teardown_masq(owner: RuleOwner, run_dir: Path) -> None:
    """Every backend's and every format's rules of `owner`, by name and comment alone."""
    for backend in available(run_dir):
        backend.delete(owner.network, owner.container_id, owner.ifname)
    fw_legacy.Legacy(run_dir).delete(owner.network, owner.container_id, owner.ifname)


def masq_addresses(owner: RuleOwner, run_dir: Path) -> set[str]:
    """The pod addresses whose outgoing traffic `owner`'s rules masquerade, in any backend (CHECK)."""
    found: set[str] = set()
    for backend in available(run_dir):
        found |= backend.addresses(owner.network, owner.container_id, owner.ifname)
    return found | fw_legacy.Legacy(run_dir).addresses(owner.network, owner.container_id, owner.ifname)


def setup_spoofcheck(owner: RuleOwner, host_ifname: str, mac: str, run_dir: Path) -> None:
    spoofcheck.setup(owner.network, owner.container_id, owner.ifname, host_ifname, mac, run_dir)


def teardown_spoofcheck(owner: RuleOwner, run_dir: Path) -> None:
    if shutil.which("nft"):
        spoofcheck.teardown(owner.container_id, owner.ifname, run_dir)
        fw_legacy.Legacy(run_dir).delete_spoofcheck(owner.network, owner.container_id, owner.ifname)


def gc_rules(network: str, valid: set[tuple[str, str]], run_dir: Path) -> None:
    """Remove every masquerade and spoof-check rule of `network` whose attachment is not in
    `valid` ((containerID, ifname) pairs), in every backend and format."""
    for backend in available(run_dir):
        backend.collect(network, valid)
    if shutil.which("nft"):
        spoofcheck.collect(network, valid, run_dir)
    fw_legacy.Legacy(run_dir).collect(network, valid)
