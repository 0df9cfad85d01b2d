"""bridge with masquerade in nftables: ADD by one side, CHECK and DEL by the other, both
directions, and the node left exactly as before the ADD (`snapshot`: links, addresses, routes,
rules, reservations, files, every nftables and iptables rule).

The Debian bridge (1.1.1) has no nftables backend; the reference's (v1.5+) writes `table inet
cni_plugins_masquerade` and tears down both backends on DEL. So its link and IPAM part is run
from /usr/lib/cni and its nftables part is played from its source (`reference_add`,
`reference_teardown`, built independently of our code in test_masquerade_formats.py). Rolling
back to a reference without nftables is the real Debian binary after `pycni uninstall --node
--masquerade-to-iptables`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns, unique
from tests.migration.node import Side, assert_as_before, iptables_nat, settle, snapshot, uninstall
from tests.migration.test_masquerade_formats import (
    TABLE,
    bridge_conf,
    masq_rules,
    reference_add,
    reference_comment,
    reference_teardown,
)

NET = "fmt-net"  # bridge_conf's network name


def address(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"])


def test_reference_nftables_attachment_is_checked_and_deleted_by_ours(
    go: Side, ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    go_conf = bridge_conf(data, unique("mbr", 12))  # the Debian binary: links and addresses only
    conf = {**go_conf, "ipMasq": True, "ipMasqBackend": "nftables"}
    pod = make_netns("mpod")
    keeper = go("bridge", "ADD", go_conf, pod, node, "nft-keep", ifname="keep0").ok()
    reference_add(node, NET, "keep0", "nft-keep", address(keeper))
    settle(node)
    before = snapshot(node, pod, data)
    result = go("bridge", "ADD", go_conf, pod, node, "nft-ctr").ok()
    with_prev = {**conf, "prevResult": result}
    missing = ours("bridge", "CHECK", with_prev, pod, node, "nft-ctr")
    assert missing.code != 0, "CHECK passed without the attachment's masquerade rule"
    reference_add(node, NET, "eth0", "nft-ctr", address(result))
    ours("bridge", "CHECK", with_prev, pod, node, "nft-ctr").ok()
    ours("bridge", "DEL", with_prev, pod, node, "nft-ctr").ok()
    assert_as_before(before, snapshot(node, pod, data))
    ours("bridge", "DEL", conf, pod, node, "nft-keep", ifname="keep0").ok()
    assert TABLE not in node.run("nft", "list", "tables")


def test_our_nftables_attachment_is_checked_and_deleted_by_the_reference(
    go: Side, ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    conf = bridge_conf(data, unique("mbr", 12), ipMasq=True, ipMasqBackend="nftables")
    pod = make_netns("mpod")
    ours("bridge", "ADD", conf, pod, node, "nft-keep", ifname="keep0").ok()
    settle(node)
    before = snapshot(node, pod, data)
    result = ours("bridge", "ADD", conf, pod, node, "nft-ctr").ok()
    assert [r["comment"] for r in masq_rules(node)] == [
        reference_comment(NET, "keep0", "nft-keep"),
        reference_comment(NET, "eth0", "nft-ctr"),
    ]
    # The Debian binary plays the links and IPAM (its DEL fails on a masquerade chain that is
    # not there, which v1.5's, tearing down both backends, tolerates); v1.5's nftables teardown
    # is played from its source.
    go_conf = {k: v for k, v in conf.items() if k not in ("ipMasq", "ipMasqBackend")}
    go("bridge", "CHECK", {**go_conf, "prevResult": result}, pod, node, "nft-ctr").ok()
    go("bridge", "DEL", {**go_conf, "prevResult": result}, pod, node, "nft-ctr").ok()
    assert reference_teardown(node, NET, "eth0", "nft-ctr") == 1
    assert_as_before(before, snapshot(node, pod, data))
    ours("bridge", "DEL", conf, pod, node, "nft-keep", ifname="keep0").ok()


def test_rolling_back_our_nftables_masquerade_to_a_reference_without_nftables(
    go: Side, ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """The Debian bridge (1.1.1) knows only iptables: `--masquerade-to-iptables` moves our
    nftables rules into its chain, and its own DEL then leaves the node as before the ADD."""
    conf = bridge_conf(data, unique("mbr", 12), ipMasq=True)
    pod = make_netns("mpod")
    go("bridge", "ADD", conf, pod, node, "rb-keep", ifname="keep0").ok()
    settle(node)
    before = snapshot(node, pod, data)
    result = ours("bridge", "ADD", {**conf, "ipMasqBackend": "nftables"}, pod, node, "rb-ctr").ok()
    assert len(masq_rules(node)) == 1 and 'id: \\"rb-ctr\\"' not in iptables_nat(node)
    out = uninstall(ours, node, data, "--masquerade-to-iptables")
    assert "rb-ctr/eth0 on fmt-net: moved from nftables to iptables" in out
    assert TABLE not in node.run("nft", "list", "tables")
    assert f"-s {address(result).split('/')[0]}/32" in iptables_nat(node)
    with_prev = {**conf, "prevResult": result}
    go("bridge", "CHECK", with_prev, pod, node, "rb-ctr").ok()
    go("bridge", "DEL", with_prev, pod, node, "rb-ctr").ok()
    assert_as_before(before, snapshot(node, pod, data))
    go("bridge", "DEL", conf, pod, node, "rb-keep", ifname="keep0").ok()


def test_rolling_back_masquerade_whose_comment_the_128_character_limit_cut(
    go: Side, ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """A real container ID is 64 characters: the comment loses its end, so the owner comes from
    the runtime's result cache by the comment's hash, never from the cut ID."""
    import json

    from pycni.libcni.cache import CachedAttachment, ResultCache

    conf = bridge_conf(data, unique("mbr", 12), ipMasq=True)
    container_id = unique("c", 64).ljust(64, "0")
    pod, ifname = make_netns("mpod"), "podside-eth0"
    go("bridge", "ADD", conf, pod, node, "cut-keep", ifname="keep0").ok()
    settle(node)
    before = snapshot(node, pod, data)
    nft_conf = {**conf, "ipMasqBackend": "nftables"}
    result = ours("bridge", "ADD", nft_conf, pod, node, container_id, ifname=ifname).ok()
    (rule,) = masq_rules(node)
    assert len(rule["comment"]) == 128 and container_id not in rule["comment"]  # cut
    entry = CachedAttachment(NET, container_id, ifname, pod.path, result, [], {})
    ResultCache(data / "cache").save(entry, json.dumps(conf).encode())
    out = uninstall(ours, node, data, "--masquerade-to-iptables")
    assert f"{container_id}/{ifname} on {NET}: moved from nftables to iptables" in out
    assert TABLE not in node.run("nft", "list", "tables")
    with_prev = {**conf, "prevResult": result}
    go("bridge", "DEL", with_prev, pod, node, container_id, ifname=ifname).ok()
    ResultCache(data / "cache").remove(NET, container_id, ifname)  # the runtime's, after its DEL
    assert_as_before(before, snapshot(node, pod, data))
    go("bridge", "DEL", conf, pod, node, "cut-keep", ifname="keep0").ok()
