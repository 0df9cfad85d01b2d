"""Masquerade teardown racing another teardown of the same rules (a second DEL, a GC) succeeds."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_interface
from pathlib import Path
from typing import Any

import pytest

from pycni.cni.errors import InternalError
from pycni.net import firewall, fwtool, masq_iptables, masq_nftables
from pycni.net.netns import entered
from tests.helpers.netns import Netns

OWNER = firewall.RuleOwner("racenet", "ctr-race", "eth0")
ADDRS = [ip_interface("10.244.9.5/24"), ip_interface("fd00:9::5/64")]
NFT_TABLE = masq_nftables.TABLE


def nft_rules(node: Netns) -> list[str]:
    out = node.run("nft", "list", "ruleset")
    return [line.strip() for line in out.splitlines() if "masquerade comment" in line]


def iptables_rules(node: Netns) -> list[str]:
    lines = (
        node.run("iptables-save", "-t", "nat").splitlines()
        + node.run("ip6tables-save", "-t", "nat").splitlines()
    )
    return [line for line in lines if 'name: \\"' in line or line.startswith(":CNI-")]


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def test_nft_teardown_whose_rules_another_deleter_removed_first_succeeds(
    make_netns: Callable[..., Netns], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The cause of "nft failed: ... No such file or directory": rules listed, then gone before our batch."""
    needs("nft")
    node = make_netns("fw")
    with entered(node.path):
        backend = masq_nftables.Nftables(tmp_path)
        backend.add(OWNER.network, OWNER.container_id, OWNER.ifname, ADDRS)
        assert len(nft_rules(node)) == 2
        real = masq_nftables.Nftables._rules
        raced = [False]

        def listing_then_the_other_deleter_wins(self: masq_nftables.Nftables) -> list[tuple[int, str, str]]:
            found = real(self)
            if found and not raced[0]:
                raced[0] = True
                batch = "".join(
                    f"delete rule {masq_nftables.WHERE} {masq_nftables.CHAIN} handle {h}\n"
                    for h, _, _ in found
                )
                fwtool.run(["nft", "-f", "-"], batch)
            return found

        monkeypatch.setattr(masq_nftables.Nftables, "_rules", listing_then_the_other_deleter_wins)
        backend.delete(OWNER.network, OWNER.container_id, OWNER.ifname)
    assert raced[0]
    assert nft_rules(node) == []
    assert NFT_TABLE not in node.run("nft", "list", "tables")


def test_iptables_teardown_whose_rules_another_deleter_removed_first_succeeds(
    make_netns: Callable[..., Netns], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The reference's DEL (which takes none of our locks) removed the jumps between our listing
    and our batch: the batch fails whole, the listing is taken again, the rest goes."""
    needs("iptables-restore")
    node = make_netns("fw")
    with entered(node.path):
        backend = masq_iptables.Iptables(tmp_path)
        backend.add(OWNER.network, OWNER.container_id, OWNER.ifname, ADDRS)
        assert iptables_rules(node)
        real = masq_iptables._chains
        raced: set[int] = set()

        def listing_then_the_other_deleter_wins(version: int, wanted: Any = None) -> Any:
            found = real(version, wanted)
            if found and wanted is not None and version not in raced:
                raced.add(version)
                fwtool.restore(version, [j.deletion for chain in found.values() for j in chain.jumps])
            return found

        monkeypatch.setattr(masq_iptables, "_chains", listing_then_the_other_deleter_wins)
        backend.delete(OWNER.network, OWNER.container_id, OWNER.ifname)
    assert raced == {4, 6}
    assert iptables_rules(node) == []


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_eight_concurrent_teardowns_and_a_gc_all_succeed(
    make_netns: Callable[..., Netns], backend: str, tmp_path: Path
) -> None:
    needs("nft" if backend == "nftables" else "iptables-restore")
    node = make_netns("fw")
    others = [firewall.RuleOwner("racenet", f"ctr-{i}", "eth0") for i in range(4)]
    with entered(node.path):
        for owner in [OWNER, *others]:
            firewall.setup_masq(owner, ADDRS, backend, tmp_path)

    def teardown(i: int) -> None:
        with entered(node.path):
            if i == 8:
                firewall.gc_rules("racenet", set(), tmp_path)
            else:
                firewall.teardown_masq(OWNER, tmp_path)

    with ThreadPoolExecutor(9) as pool:
        list(pool.map(teardown, range(9)))
    assert (nft_rules if backend == "nftables" else iptables_rules)(node) == []
    assert NFT_TABLE not in node.run("nft", "list", "tables")
    per_pod = [f.name for f in (tmp_path / "locks").glob("*") if f.name.startswith("iptables")]
    assert per_pod == [], "the lock of a pod's own chain outlived it (one file per pod ever seen)"


def test_the_last_teardown_never_takes_the_table_from_under_a_concurrent_add(
    make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    """The table goes with its last rule; an ADD racing that removal keeps its rule."""
    needs("nft")
    node = make_netns("fw")
    churn = firewall.RuleOwner("racenet", "ctr-churn", "eth0")
    lost: list[str] = []

    def churner() -> None:
        with entered(node.path):
            for _ in range(15):
                firewall.setup_masq(churn, ADDRS, "nftables", tmp_path)
                firewall.teardown_masq(churn, tmp_path)

    def adder() -> None:
        with entered(node.path):
            for i in range(15):
                owner = firewall.RuleOwner("racenet", f"ctr-add-{i}", "eth0")
                firewall.setup_masq(owner, ADDRS, "nftables", tmp_path)
                if not masq_nftables.Nftables(tmp_path).addresses(
                    owner.network, owner.container_id, owner.ifname
                ):
                    lost.append(owner.container_id)
                firewall.teardown_masq(owner, tmp_path)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(churner), pool.submit(adder)]:
            future.result()
    assert lost == [], "an ADD's rules were removed with the table by another attachment's DEL"
    assert nft_rules(node) == [] and NFT_TABLE not in node.run("nft", "list", "tables")


def test_a_removal_that_fails_with_nothing_removed_meanwhile_still_fails() -> None:
    def remove(doomed: Sequence[int]) -> None:
        raise InternalError("nft failed: Operation not permitted")

    with pytest.raises(InternalError, match="not permitted"):
        fwtool.remove_all(lambda: [1, 2], remove)


def test_a_removal_retries_only_what_is_left() -> None:
    left = [[1, 2, 3], [2]]
    removed: list[list[int]] = []

    def remove(doomed: Sequence[int]) -> None:
        removed.append(list(doomed))
        if len(removed) == 1:
            left.pop(0)
            raise InternalError("nft failed: No such file or directory")

    fwtool.remove_all(lambda: left[0], remove)
    assert removed == [[1, 2, 3], [2]]
