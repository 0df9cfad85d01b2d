"""Property: a vxlan ADD that fails leaves nothing behind, whatever in its config is wrong.

Hostile but parseable configs (broken ipam sections, VNIs, ports, underlays, remotes, groups,
MTUs the underlay cannot carry, names) are ADDed in-process inside a throw-away node netns with
an uplink; node and pod are snapshotted before and after each example (see
tests/bridge/node_state.py). A VNI's devices stay after a successful ADD's DEL by design: the
example removes them, as GC would, before comparing.
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
from tests.helpers.netns import Netns
from tests.vxlan.node import LOCAL, REMOTE, UPLINK, vxlan_conf, with_uplink

VNI = 4322
ADDRESSES = [REMOTE, LOCAL, "192.0.2.9", "239.1.1.1", "ff02::1", "fd00::2", "0.0.0.0", "x", 5]
VXLAN_EDITS: dict[str, st.SearchStrategy[Any]] = {
    "vni": st.sampled_from([0, 7, 2**24, -1, "x", VNI]),
    "port": st.sampled_from([0, 8472, 65536, "x"]),
    "underlay": st.one_of(st.sampled_from([UPLINK, "nope", "up0peer"]), hostile.link_names()),
    "localIP": st.sampled_from(ADDRESSES),
    "remotes": st.one_of(st.lists(st.sampled_from(ADDRESSES), max_size=3), st.sampled_from(["x", None])),
    "group": st.sampled_from(ADDRESSES),
    "learning": hostile.BOOLS,
    "disableTxChecksumOffload": hostile.BOOLS,
    "bridge": hostile.link_names(),
    "mtu": st.one_of(st.sampled_from([1450, 1451, 1500, 68]), hostile.mtus()),
    "ipMasq": hostile.BOOLS,
    "isGateway": hostile.BOOLS,
    "hairpinMode": hostile.BOOLS,
    "promiscMode": hostile.BOOLS,
    "macspoofchk": hostile.BOOLS,
}


def wants_rules(conf: dict[str, Any]) -> bool:
    return bool(conf.get("ipMasq") or conf.get("macspoofchk"))


@pytest.mark.fuzz
def test_a_failed_vxlan_add_leaves_nothing_behind(make_netns: Callable[..., Netns], tmp_path: Path) -> None:
    where = scene(with_uplink(make_netns("fzn")), make_netns("fzp"), tmp_path)

    def remove_devices(conf: dict[str, Any]) -> None:
        vni = conf["vni"]
        delete_links(where.node, f"vx{vni}", str(conf.get("bridge") or f"vxbr{vni}"))

    @fuzz_settings()
    @given(conf=hostile.mutated(vxlan_conf(VNI, where.data), VXLAN_EDITS))
    def example(conf: dict[str, Any]) -> None:
        add_leaves_nothing(where, "vxlan", conf, wants_rules(conf), lambda: remove_devices(conf))

    example()
