"""ADD/CHECK/DEL/STATUS/GC of the vxlan plugin on one node of the simulated cluster."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.helpers.cni import ALL_SPEC_VERSIONS, has_check
from tests.vxlan.topology import UPLINK, Cluster, Node, Pod


def flood_dsts(node: Node, dev: str) -> set[str]:
    out = node.ns.run("bridge", "-j", "fdb", "show", "dev", dev)
    entries: list[dict[str, Any]] = json.loads(out) if out.strip() else []
    return {str(e["dst"]) for e in entries if e.get("mac") == "00:00:00:00:00:00" and "dst" in e}


def leases(node: Node, network: str) -> set[str]:
    """Addresses host-local holds for `network` on `node` (one file per address)."""
    folder = node.data_dir / network
    if not folder.is_dir():
        return set()
    return {
        p.name for p in folder.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip")
    }


def overlay_links(node: Node) -> set[str]:
    return {name for name in node.ns.link_names() if name.startswith("vx")}


def with_prev(pod: Pod) -> dict[str, Any]:
    return {**pod.conf, "prevResult": pod.result}


def test_changed_remotes_take_effect_on_the_next_add(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    cluster.add_pod(node, cluster.conf(60, node))
    assert flood_dsts(node, "vx60") == {cluster.nodes[1].v4, cluster.nodes[2].v4}
    changed = cluster.conf(60, node, remotes=[node.v4, cluster.nodes[1].v4, "192.0.2.99"])
    cluster.add_pod(node, changed)
    assert flood_dsts(node, "vx60") == {cluster.nodes[1].v4, "192.0.2.99"}


def test_existing_device_with_another_port_is_an_error_naming_it_and_leaves_nothing(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    node.ns.run(
        "ip",
        "link",
        "add",
        "vx61",
        "type",
        "vxlan",
        "id",
        "61",
        "dstport",
        "8472",
        "local",
        node.v4,
        "dev",
        "up0",
    )
    pod = cluster.make_netns("vxp")
    out = cluster.run("ADD", node, cluster.conf(61, node), pod)
    assert out.code != 0
    msg = out.json["msg"]
    assert "port is 8472 (config wants 4789)" in msg, msg
    assert pod.link_names() == {"lo"}
    assert overlay_links(node) == {"vx61"}, "no bridge created for a conflicting VNI"
    assert leases(node, "ovl61") == set()


def test_same_vni_with_a_different_port_in_a_later_config_is_refused(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    first = cluster.add_pod(node, cluster.conf(62, node))
    pod = cluster.make_netns("vxp")
    out = cluster.run("ADD", node, cluster.conf(62, node, port=8472), pod, container_id="other")
    assert out.code != 0 and "port is 4789 (config wants 8472)" in out.json["msg"]
    assert pod.link_names() == {"lo"}
    assert leases(node, "ovl62") == {first.ip(4), first.ip(6)}


def test_vni_carried_by_a_foreign_device_is_an_error_naming_it(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    node.ns.run("ip", "link", "add", "theirs", "type", "vxlan", "id", "63", "dstport", "4789", "dev", "up0")
    out = cluster.run("ADD", node, cluster.conf(63, node), cluster.make_netns("vxp"))
    assert out.code != 0 and "theirs" in out.json["msg"]
    assert overlay_links(node) == set()


def test_failed_add_on_a_new_vni_removes_the_devices_it_created(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    pod = cluster.make_netns("vxp")
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other")
    out = cluster.run("ADD", node, cluster.conf(64, node), pod)
    assert out.code != 0 and "already exists" in out.json["msg"]
    assert overlay_links(node) == set()
    assert leases(node, "ovl64") == set()


def test_check_passes_after_add_and_names_a_missing_flood_entry(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    pod = cluster.add_pod(node, cluster.conf(65, node))
    cluster.run("CHECK", node, with_prev(pod), pod.ns, pod.container_id).ok()
    node.ns.run("bridge", "fdb", "del", "00:00:00:00:00:00", "dev", "vx65", "dst", cluster.nodes[2].v4)
    out = cluster.run("CHECK", node, with_prev(pod), pod.ns, pod.container_id)
    assert out.code != 0 and f"missing {cluster.nodes[2].v4}" in out.json["msg"]


def test_check_names_a_changed_mtu(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    pod = cluster.add_pod(node, cluster.conf(66, node))
    node.ns.run("ip", "link", "set", "vx66", "mtu", "1400")
    out = cluster.run("CHECK", node, with_prev(pod), pod.ns, pod.container_id)
    assert out.code != 0 and "mtu is 1400 (config wants 1450)" in out.json["msg"]


def test_check_notices_the_pod_interface_is_gone(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    pod = cluster.add_pod(node, cluster.conf(67, node))
    pod.ns.run("ip", "link", "del", "eth0")
    out = cluster.run("CHECK", node, with_prev(pod), pod.ns, pod.container_id)
    assert out.code != 0 and "eth0" in out.json["msg"]


def test_del_is_idempotent_releases_ips_and_keeps_shared_devices(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    a = cluster.add_pod(node, cluster.conf(68, node))
    b = cluster.add_pod(node, cluster.conf(68, node))
    cluster.delete_pod(a).ok()
    cluster.delete_pod(a).ok()
    assert a.ns.link_names() == {"lo"}
    assert leases(node, "ovl68") == {b.ip(4), b.ip(6)}
    assert overlay_links(node) == {"vx68", "vxbr68"}


def test_del_after_the_netns_is_gone_still_releases_ips(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    pod = cluster.add_pod(node, cluster.conf(69, node))
    pod.ns.run("true")
    from tests.helpers.netns import delete_netns

    delete_netns(pod.ns)
    cluster.run("DEL", node, pod.conf, pod.ns, pod.container_id).ok()
    cluster.run("DEL", node, pod.conf, container_id=pod.container_id, netns="").ok()
    assert leases(node, "ovl69") == set()


def gc_conf(conf: dict[str, Any], valid: list[Pod]) -> dict[str, Any]:
    attachments = [{"containerID": p.container_id, "ifname": "eth0"} for p in valid]
    return {**conf, "cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments}


def test_gc_removes_our_devices_only_when_no_pod_uses_them(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    conf = cluster.conf(70, node)
    a = cluster.add_pod(node, conf)
    cluster.run("GC", node, gc_conf(conf, [a]), container_id=None).ok()
    assert overlay_links(node) == {"vx70", "vxbr70"}
    assert a.ns.ping(a.ip(4))
    cluster.delete_pod(a).ok()
    cluster.run("GC", node, gc_conf(conf, []), container_id=None).ok()
    assert overlay_links(node) == set()


def test_gc_leaves_a_bridge_the_operator_made(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    node.ns.run("ip", "link", "add", "opbr0", "type", "bridge")
    conf = cluster.conf(71, node, bridge="opbr0")
    pod = cluster.add_pod(node, conf)
    cluster.delete_pod(pod).ok()
    cluster.run("GC", node, gc_conf(conf, []), container_id=None).ok()
    links = node.ns.link_names()
    assert "opbr0" in links and "vx71" not in links


def test_gc_releases_ips_of_attachments_no_longer_valid(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    conf = cluster.conf(72, node)
    a, b = cluster.add_pod(node, conf), cluster.add_pod(node, conf)
    cluster.run("GC", node, gc_conf(conf, [b]), container_id=None).ok()
    assert leases(node, "ovl72") == {b.ip(4), b.ip(6)}
    assert a.ns.link_names() == {"lo", "eth0"}, "GC is not DEL: the pod's interface is the runtime's business"


def test_status_is_ok_with_an_underlay_and_code_50_without(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    cluster.run("STATUS", node, cluster.conf(73, node), container_id=None).ok()
    out = cluster.run("STATUS", node, cluster.conf(73, node, underlay="nosuch0"), container_id=None)
    assert out.error_code == 50 and "nosuch0" in out.json["msg"]


def test_without_peers_the_underlay_is_the_link_of_the_default_route(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    conf = cluster.conf(77, node, remotes=[])
    out = cluster.run("STATUS", node, conf, container_id=None)
    assert out.error_code == 50 and "no default IPv4 route" in out.json["msg"], out.stdout
    node.ns.run("ip", "route", "add", "default", "via", cluster.nodes[1].v4, "dev", UPLINK)
    cluster.add_pod(node, conf)
    vxlan = node.ns.links()["vx77"]["linkinfo"]["info_data"]
    assert (vxlan["link"], vxlan["local"]) == (UPLINK, node.v4)


def test_a_remote_without_a_route_leaves_no_underlay(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    out = cluster.run("STATUS", node, cluster.conf(78, node, remotes=["198.51.100.7"]), container_id=None)
    assert out.error_code == 50 and "no route towards 198.51.100.7" in out.json["msg"], out.stdout


def test_concurrent_adds_on_one_node_share_one_device(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    conf = cluster.conf(74, node)
    pods = [cluster.make_netns("vxp") for _ in range(6)]
    with ThreadPoolExecutor(len(pods)) as pool:
        outs = list(pool.map(lambda i: cluster.run("ADD", node, conf, pods[i], f"c{i}"), range(len(pods))))
    for out in outs:
        out.ok()
    assert overlay_links(node) == {"vx74", "vxbr74"}
    ports = node.ns.ip("link", "show", "master", "vxbr74")
    assert len(ports) == len(pods) + 1
    assert len(leases(node, "ovl74")) == 2 * len(pods)


@pytest.mark.parametrize("cni_version", ALL_SPEC_VERSIONS)
def test_add_check_del_in_every_spec_version(cluster: Cluster, cni_version: str) -> None:
    node, other = cluster.nodes[0], cluster.nodes[1]
    peer = cluster.add_pod(other, cluster.conf(75, other))
    conf = cluster.conf(75, node, cniVersion=cni_version)
    pod = cluster.add_pod(node, conf)
    assert pod.result is not None and pod.result["cniVersion"] == cni_version
    assert pod.ns.ping(peer.ip(4))
    if has_check(cni_version):
        cluster.run("CHECK", node, with_prev(pod), pod.ns, pod.container_id).ok()
    cluster.delete_pod(pod).ok()
    assert leases(node, "ovl75") == set()


def test_tx_checksum_offload_is_turned_off_when_asked(cluster: Cluster) -> None:
    from pyroute2.ethtool import Ethtool

    from pycni.net import netns

    node = cluster.nodes[0]
    pod = cluster.add_pod(node, cluster.conf(76, node, disableTxChecksumOffload=True))
    with netns.entered(node.ns.path):
        ethtool = Ethtool()
        try:
            assert not ethtool.get_features("vx76").features["tx-checksum-ip-generic"].enable
        finally:
            ethtool.close()
    cluster.run("CHECK", node, with_prev(pod), pod.ns, pod.container_id).ok()


def test_mac_and_ips_capabilities_reach_the_pod(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    runtime = {"mac": "c2:11:22:33:44:55", "ips": ["10.77.0.15/24"]}
    conf = cluster.conf(77, node, capabilities={"mac": True, "ips": True}, runtimeConfig=runtime)
    conf["ipam"]["ranges"] = conf["ipam"]["ranges"][:1]
    pod = cluster.add_pod(node, conf)
    assert pod.mac == "c2:11:22:33:44:55"
    assert pod.ns.addrs("eth0") >= {"10.77.0.15/24"}
