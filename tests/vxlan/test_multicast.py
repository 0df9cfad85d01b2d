"""`group` mode: flooding through a multicast group instead of a list of remotes.

Whether multicast works depends on the kernel and the underlay; when the kernel refuses the
device, the test skips with the kernel's own reason rather than passing vacuously.
"""

from __future__ import annotations

import pytest

from tests.vxlan.topology import Cluster, Pod


def add_or_skip(cluster: Cluster, index: int, conf: dict[str, object], address: str) -> Pod:
    node = cluster.nodes[index]
    pod_ns = cluster.make_netns("vxp")
    out = cluster.run("ADD", node, conf, pod_ns, f"m{index}")
    if out.code != 0 and "failed to create VXLAN device" in str(out.json.get("msg")):
        pytest.skip(f"multicast VXLAN not available here: {out.json['msg']}")
    pod = Pod(pod_ns, node, f"m{index}", conf, out.ok())
    pod_ns.run("ip", "addr", "add", address, "dev", "eth0")
    return pod


@pytest.mark.parametrize(
    ("group", "v6"), [("239.1.77.1", False), ("ff05::77", True)], ids=["ipv4-group", "ipv6-group"]
)
def test_pods_reach_each_other_through_a_multicast_group(cluster: Cluster, group: str, v6: bool) -> None:
    conf = cluster.conf(80, ipam=False, group=group, underlay="up0")
    a = add_or_skip(cluster, 0, conf, "10.83.0.1/24")
    add_or_skip(cluster, 1, conf, "10.83.0.2/24")
    add_or_skip(cluster, 2, conf, "10.83.0.3/24")
    vx = cluster.nodes[0].ns.links()["vx80"]
    assert vx["linkinfo"]["info_data"]["group6" if v6 else "group"] == group
    assert vx["mtu"] == (1430 if v6 else 1450)
    assert a.ns.ping("10.83.0.2") and a.ns.ping("10.83.0.3")
