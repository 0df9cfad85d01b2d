"""Property: a bridge ADD that fails leaves nothing behind, whatever in its config is wrong.

Hostile but parseable configs (broken ipam sections, MTUs, names, versions, requested
addresses and MACs) are ADDed in-process inside a throw-away node netns for a pod netns; the
node and the pod are snapshotted before and after each example (links, bridge ports,
addresses, routes, host-local's reservations, our firewall rules when the config asks for any).
The namespaces are made once per test: every example must leave them as it found them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bridge import strategies as hostile
from tests.bridge.node_state import add_leaves_nothing, delete_links, scene
from tests.helpers.fuzz import fuzz_settings
from tests.helpers.netns import Netns, unique

BRIDGE_EDITS = {
    "bridge": hostile.link_names(),
    "mtu": hostile.mtus(),
    "vlan": st.one_of(st.sampled_from([0, 5, 4095, -1]), st.integers()),
    "vlanTrunk": st.sampled_from([[], [{"id": 5}], [{"minID": 9, "maxID": 3}], [{}], "x"]),
    "ipMasq": hostile.BOOLS,
    "ipMasqBackend": st.sampled_from(["nftables", "iptables", "ebpf"]),
    **{
        key: hostile.BOOLS
        for key in (
            "isGateway",
            "isDefaultGateway",
            "hairpinMode",
            "promiscMode",
            "forceAddress",
            "macspoofchk",
            "disableContainerInterface",
            "portIsolation",
        )
    },
}


def bridge_configs(bridge: str, data: Path) -> st.SearchStrategy[dict[str, Any]]:
    base = {
        "cniVersion": "1.1.0",
        "name": "fuzznet",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipam": hostile.host_local(data),
    }
    return hostile.mutated(base, BRIDGE_EDITS)


def wants_rules(conf: dict[str, Any]) -> bool:
    return bool(conf.get("ipMasq") or conf.get("macspoofchk"))


@pytest.mark.fuzz
def test_a_failed_bridge_add_leaves_nothing_behind(make_netns: Callable[..., Netns], tmp_path: Path) -> None:
    bridge = unique("fzb", 12)
    where = scene(make_netns("fzn"), make_netns("fzp"), tmp_path)

    def remove_bridge(conf: dict[str, Any]) -> None:
        """DEL keeps the bridge, as the reference does; the default one if the key was removed."""
        delete_links(where.node, str(conf.get("bridge", "cni0")))

    @fuzz_settings()
    @given(conf=bridge_configs(bridge, where.data))
    def example(conf: dict[str, Any]) -> None:
        add_leaves_nothing(where, "bridge", conf, wants_rules(conf), lambda: remove_bridge(conf))

    example()
