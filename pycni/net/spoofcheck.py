"""`macspoofchk`: frames entering from a pod's bridge port must carry the pod's MAC, in the
rules the reference bridge plugin writes (`pkg/link/spoofcheck.go`).

`table bridge nat`, base chain `PREROUTING` (filter, prerouting, priority -300): a rule
`iifname <host veth> jump cni-br-iface-<containerID>-<ifname>`, that chain jumping to
`...-mac`, which returns for the pod's MAC and drops the rest; every rule commented
`macspoofchk-<containerID>-<ifname>`. The reference's DEL deletes the PREROUTING rule by that
comment and both chains by name, so it removes ours, and ours removes its. For GC, which must
know a rule's network, the interface chain holds one more rule of ours, a counter commented
with the attachment's tag `pycni/<hash(network)>/<hash(containerID, ifname)>`; it goes with the
chain. Unlike the reference, we remove the table once nothing but an empty PREROUTING is left.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pycni.net import fw_legacy, fwtool
from pycni.net.lock import flock, resource_lock

WHERE = "bridge nat"
BASE = "PREROUTING"
IFACE_PREFIX = "cni-br-iface-"


def ref_id(container_id: str, ifname: str) -> str:
    return f"{container_id}-{ifname}"


def comment(container_id: str, ifname: str) -> str:
    return f"macspoofchk-{ref_id(container_id, ifname)}"


def iface_chain(container_id: str, ifname: str) -> str:
    return IFACE_PREFIX + ref_id(container_id, ifname)


def _lock(run_dir: Path) -> AbstractContextManager[None]:
    return flock(resource_lock(run_dir, "nftables", WHERE), what=f"nftables table {WHERE}")


def setup(network: str, container_id: str, ifname: str, host_ifname: str, mac: str, run_dir: Path) -> None:
    note = comment(container_id, ifname)
    iface = iface_chain(container_id, ifname)
    tag = fw_legacy.tag(network, container_id, ifname)
    lines = [
        f"add table {WHERE}",
        f"add chain {WHERE} {BASE} {{ type filter hook prerouting priority -300 ; policy accept ; }}",
        f"add chain {WHERE} {iface}",
        f"add chain {WHERE} {iface}-mac",
        f"flush chain {WHERE} {iface}",
        f"flush chain {WHERE} {iface}-mac",
        f'add rule {WHERE} {BASE} iifname "{host_ifname}" jump {iface} comment "{note}"',
        f'add rule {WHERE} {iface} counter comment "{tag}"',
        f'add rule {WHERE} {iface} jump {iface}-mac comment "{note}"',
        f'add rule {WHERE} {iface}-mac ether saddr {mac} return comment "{note}"',
        f'add rule {WHERE} {iface}-mac drop comment "{note}"',
    ]
    with _lock(run_dir):
        fwtool.run(["nft", "-f", "-"], "\n".join(lines) + "\n")


def _table() -> list[dict[str, Any]]:
    """nft's JSON items of `bridge nat` (chains and rules); none when there is no such table."""
    text = fwtool.listing(["nft", "-j", "list", "table", "bridge", "nat"], fwtool.NFT_MISSING)
    return json.loads(text).get("nftables", []) if text else []


def teardown(container_id: str, ifname: str, run_dir: Path) -> None:
    _remove_ref_ids([ref_id(container_id, ifname)], run_dir)


def _drop_if_unused() -> None:
    """The table, when all it has left is an empty PREROUTING (ours or the reference's)."""
    items = _table()
    chains = [c["name"] for i in items if (c := i.get("chain"))]
    if chains == [BASE] and not any("rule" in i for i in items):
        fwtool.run(["nft", "-f", "-"], f"delete table {WHERE}\n")


def collect(network: str, valid: set[tuple[str, str]], run_dir: Path) -> None:
    """GC: the spoof checks of `network` (known by our tag) whose attachment is not valid."""
    items = _table()
    tags = {
        r["chain"]: r["comment"]
        for i in items
        if (r := i.get("rule"))
        and r["chain"].startswith(IFACE_PREFIX)
        and r.get("comment", "").startswith("pycni/")
    }
    stale = fw_legacy.stale_tags(tags.values(), network, valid)
    doomed = [chain[len(IFACE_PREFIX) :] for chain, tag in tags.items() if tag in stale]
    if doomed:
        # a chain's name holds "<containerID>-<ifname>": remove by that exact reference id
        _remove_ref_ids(doomed, run_dir)


def _remove_ref_ids(ids: list[str], run_dir: Path) -> None:
    notes = {f"macspoofchk-{i}" for i in ids}
    with _lock(run_dir):
        items = _table()
        handles = [
            r["handle"]
            for i in items
            if (r := i.get("rule")) and r["chain"] == BASE and r.get("comment") in notes
        ]
        have = {c["name"] for i in items if (c := i.get("chain"))}
        names = [n for ref in ids for n in (IFACE_PREFIX + ref, IFACE_PREFIX + ref + "-mac") if n in have]
        lines = [f"delete rule {WHERE} {BASE} handle {h}" for h in handles]
        lines += [f"delete chain {WHERE} {n}" for n in names]
        if lines:
            fwtool.run(["nft", "-f", "-"], "\n".join(lines) + "\n")
            _drop_if_unused()
