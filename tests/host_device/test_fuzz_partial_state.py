"""Property: a host-device ADD that fails leaves nothing behind, whatever in its config is wrong.

Hostile but parseable configs (broken ipam sections, versions, selectors naming nothing, the
wrong thing or two things) are ADDed in-process inside a throw-away node netns whose "device"
is a veth stand-in; node, pod, IPAM reservations and host-device's state records are
snapshotted before and after each example (see tests/bridge/node_state.py). An ADD that
succeeds is DEL'd, and the device must be back as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bridge import strategies as hostile
from tests.bridge.node_state import add_leaves_nothing, scene
from tests.helpers.fuzz import fuzz_settings
from tests.helpers.netns import Netns

DEVICE, PEER, MAC = "hdfz0", "hdfz0p", "02:00:0a:fa:00:42"
PCI = "0000:00:01.0"
HD_EDITS: dict[str, st.SearchStrategy[Any]] = {
    "device": st.one_of(st.sampled_from([DEVICE, PEER, "nope0", "lo"]), hostile.link_names()),
    "hwaddr": st.sampled_from([MAC, MAC.upper(), "zz", "02:00:00:00:00:99", 5]),
    "kernelpath": st.sampled_from([f"/sys/devices/pci0000:00/{PCI}", "/etc/passwd", "/sys/devices/../x"]),
    "pciBusID": st.sampled_from([PCI, "x", "0000:00:01"]),
    "runtimeConfig.deviceID": st.sampled_from([PCI, "x", ""]),
}


def node_with_stand_in(make_netns: Callable[..., Netns]) -> tuple[Netns, Netns]:
    """A node whose device is a veth end (its peer stays in the node), and a pod.

    Neither namespace makes IPv6 link-local addresses: their DAD ends at any time, which would
    change routes between two snapshots.
    """
    node, pod = make_netns("fzn"), make_netns("fzp")
    for ns in (node, pod):
        ns.run("sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")
    node.run("ip", "link", "add", DEVICE, "address", MAC, "type", "veth", "peer", "name", PEER)
    for name in (DEVICE, PEER):
        node.run("ip", "link", "set", name, "addrgenmode", "none", "up")
    return node, pod


@pytest.mark.fuzz
def test_a_failed_host_device_add_leaves_nothing_behind(
    make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    node, pod = node_with_stand_in(make_netns)
    (tmp_path / "sys").mkdir()
    where = scene(node, pod, tmp_path, PYCNI_SYSFS_ROOT=str(tmp_path / "sys"))
    base = {
        "cniVersion": "1.1.0",
        "name": "fuzzhd",
        "type": "host-device",
        "device": DEVICE,
        "ipam": hostile.host_local(where.data),
    }

    @fuzz_settings()
    @given(conf=hostile.mutated(base, HD_EDITS))
    def example(conf: dict[str, Any]) -> None:
        add_leaves_nothing(where, "host-device", conf, rules=False, after_del=lambda: None)

    example()
