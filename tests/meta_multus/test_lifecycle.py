"""multus from a manifest directory, through the installed executable (directly and via the daemon):
a pod gets its cluster network and the extra networks it selects, and DEL takes all of it away."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers.netns import Netns
from tests.meta_multus.conftest import UNDERLAY_V4
from tests.meta_multus.helpers import STUB_TYPE, MultusNode, nad_manifest, pod_manifest, write_manifests

CLUSTER_SUBNET, BLUE_SUBNET, VX_SUBNET, HD_SUBNET = (
    "10.10.0.0/24",
    "10.20.0.0/24",
    "10.30.0.0/24",
    "10.40.0.0/24",
)


def four_networks(
    node: MultusNode, networks: str | list[dict[str, Any]], device: str
) -> list[dict[str, Any]]:
    return [
        *cluster_and_blue(node),
        nad_manifest(
            "vx",
            {
                "cniVersion": "1.1.0",
                "name": "vx",
                "type": "vxlan",
                "vni": 4242,
                "underlay": "up0",
                "localIP": UNDERLAY_V4,
                "remotes": ["192.0.2.2"],
                "ipam": node.ipam(VX_SUBNET),
            },
        ),
        nad_manifest(
            "hd",
            {
                "cniVersion": "1.0.0",
                "name": "hd",
                "type": "host-device",
                "device": device,
                "ipam": node.ipam(HD_SUBNET),
            },
        ),
        pod_manifest("web", networks=networks),
    ]


def cluster_and_blue(node: MultusNode) -> list[dict[str, Any]]:
    """The cluster network (a NAD in kube-system) and a secondary bridge network `blue`."""
    return [
        nad_manifest("cluster", node.bridge("cluster", "mmc0", CLUSTER_SUBNET, gateway=True), "kube-system"),
        nad_manifest("blue", node.bridge("blue", "mmb0", BLUE_SUBNET)),
    ]


def in_subnet(addrs: set[str], prefix: str) -> bool:
    return any(a.startswith(prefix) for a in addrs)


def assert_nothing_left(node: MultusNode, pod: Netns) -> None:
    assert pod.link_names() == {"lo"}
    assert node.veths() == [] and node.leases() == []
    assert node.plans() == [] and node.cached_results() == []


@pytest.mark.parametrize(
    "networks",
    [
        "blue, default/vx, hd",
        [{"name": "blue"}, {"name": "vx", "namespace": "default"}, {"name": "hd"}],
    ],
    ids=["short", "json"],
)
def test_pod_with_three_extra_networks(mnode: MultusNode, networks: Any) -> None:
    device = mnode.stand_in()
    write_manifests(mnode.manifests, four_networks(mnode, networks, device))
    pod = mnode.pod()
    result = mnode.multus("ADD", mnode.multus_conf(), pod, name="web").ok()

    assert result["cniVersion"] == "1.1.0"
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0"]
    assert result["ips"][0]["address"].startswith("10.10.0.")
    assert pod.link_names() == {"lo", "eth0", "net1", "net2", "net3"}
    assert in_subnet(pod.addrs("eth0"), "10.10.0.") and in_subnet(pod.addrs("net1"), "10.20.0.")
    assert in_subnet(pod.addrs("net2"), "10.30.0.") and in_subnet(pod.addrs("net3"), "10.40.0.")
    defaults = [r for r in pod.routes() if r["dst"] == "default"]
    assert [(r["gateway"], r["dev"]) for r in defaults] == [("10.10.0.1", "eth0")]
    assert device not in mnode.ns.link_names()

    status = mnode.network_status("web")
    assert [(s["name"], s["interface"], s["default"]) for s in status] == [
        ("kube-system/cluster", "eth0", True),
        ("default/blue", "net1", False),
        ("default/vx", "net2", False),
        ("default/hd", "net3", False),
    ]
    assert status[1]["ips"][0].startswith("10.20.0.") and "/" not in status[1]["ips"][0]
    assert status[1]["mac"] == pod.links()["net1"]["address"] and status[1]["dns"] == {}
    assert mnode.plans() == ["ctr-1"] and (mnode.cni_dir / "ctr-1").stat().st_mode & 0o777 == 0o600
    assert len(mnode.cached_results()) == 4

    mnode.multus("CHECK", mnode.multus_conf(), pod, name="web").ok()
    mnode.multus("DEL", mnode.multus_conf(), pod, name="web").ok()
    assert_nothing_left(mnode, pod)
    assert device in mnode.ns.link_names() and mnode.network_status("web") is None
    mnode.multus("DEL", mnode.multus_conf(), pod, name="web").ok()  # idempotent


def test_named_interface_and_default_route(mnode: MultusNode) -> None:
    networks = [{"name": "blue", "interface": "data0", "default-route": ["10.20.0.1"]}]
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            pod_manifest("web", networks=networks),
        ],
    )
    pod = mnode.pod()
    result = mnode.multus("ADD", mnode.multus_conf(), pod, name="web").ok()
    assert pod.link_names() == {"lo", "eth0", "data0"}
    defaults = [(r.get("gateway"), r["dev"]) for r in pod.routes() if r["dst"] == "default"]
    assert defaults == [("10.20.0.1", "data0")]
    assert not any(r["dst"] == "0.0.0.0/0" for r in result.get("routes", []))
    status = mnode.network_status("web")
    assert status[1]["interface"] == "data0" and status[1]["gateway"] == ["10.20.0.1"]
    mnode.multus("CHECK", mnode.multus_conf(), pod, name="web").ok()
    mnode.multus("DEL", mnode.multus_conf(), pod, name="web").ok()
    assert_nothing_left(mnode, pod)


@pytest.mark.parametrize(
    ("networks", "words"),
    [
        ([{"name": "blue", "interface": "eth0"}], "interface 'eth0' is requested by both"),
        ([{"name": "blue"}, {"name": "blue", "interface": "net1"}], "interface 'net1' is requested by both"),
        ([{"name": "blue", "mac": "c2:11:22:33:44:55"}], "asked for mac, but none of its plugins declares"),
        ("other/blue", "may not use network other/blue"),
        (
            [
                {"name": "blue", "default-route": ["10.20.0.1"]},
                {"name": "blue", "default-route": ["10.20.0.2"]},
            ],
            "ECMP",
        ),
        ("nosuch", "default/nosuch not found"),
        ([{"name": "blue", "interface": "a/b"}], "interface"),
    ],
)
def test_refused_before_anything_runs(mnode: MultusNode, networks: Any, words: str) -> None:
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            nad_manifest("blue", mnode.bridge("blue", "mmb1", BLUE_SUBNET), "other"),
            pod_manifest("web", networks=networks),
        ],
    )
    pod = mnode.pod()
    out = mnode.multus("ADD", mnode.multus_conf(namespaceIsolation=True), pod, name="web")
    assert out.code != 0 and words in out.json["msg"], out.stdout
    assert_nothing_left(mnode, pod)
    assert "mmc0" not in mnode.ns.link_names()


def test_failing_third_delegate_rolls_back_the_first_two(mnode: MultusNode) -> None:
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            nad_manifest("broken", mnode.stub("broken", failOn="ADD")),
            pod_manifest("web", networks="blue,broken"),
        ],
    )
    pod = mnode.pod()
    out = mnode.multus("ADD", mnode.multus_conf(), pod, name="web")
    assert out.code != 0 and out.json["code"] == 107
    assert "default/broken on net2" in out.json["msg"] and "stub refused ADD" in out.json["msg"]
    assert_nothing_left(mnode, pod)
    assert [c["cmd"] for c in mnode.stub_calls()] == ["ADD", "DEL"]
    assert mnode.network_status("web") is None


def test_a_network_whose_plugin_is_not_installed_fails_add_and_leaves_del_nothing_to_fail(
    mnode: MultusNode,
) -> None:
    """The runtime's DELs after such an ADD must succeed: the delegate never ran, so it has
    nothing to undo, and a DEL failing forever leaves a sandbox that can never be removed."""
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            nad_manifest("missing", {"cniVersion": "1.0.0", "name": "missing", "type": "not-installed"}),
            pod_manifest("web", networks="blue,missing"),
        ],
    )
    pod = mnode.pod()
    conf = mnode.multus_conf()
    out = mnode.multus("ADD", conf, pod, name="web")
    assert out.code != 0, out.stdout
    assert "network default/missing on net2" in out.json["msg"]
    assert "failed to find plugin 'not-installed'" in out.json["msg"]
    assert_nothing_left(mnode, pod)
    for _ in range(2):  # containerd's DEL, then its second with an empty CNI_NETNS
        mnode.multus("DEL", conf, pod, name="web").ok()
        mnode.multus("DEL", conf, None, name="web").ok()
    assert_nothing_left(mnode, pod)


def test_del_of_a_completed_attachment_whose_plugin_was_removed_fails_until_it_is_back(
    mnode: MultusNode,
) -> None:
    """Once an ADD completed, the plugin did run: its DEL is retried, never skipped."""
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            nad_manifest("gone", mnode.stub("gone")),
            pod_manifest("web", networks="blue,gone"),
        ],
    )
    pod = mnode.pod()
    conf = mnode.multus_conf()
    mnode.multus("ADD", conf, pod, name="web").ok()
    stub = mnode.stub_bin / STUB_TYPE
    hidden = stub.rename(stub.with_name(STUB_TYPE + ".away"))
    out = mnode.multus("DEL", conf, pod, name="web")
    assert out.code != 0 and "failed to find plugin" in out.json["msg"], out.stdout
    assert mnode.plans() == ["ctr-1"]
    hidden.rename(stub)
    mnode.multus("DEL", conf, pod, name="web").ok()
    assert_nothing_left(mnode, pod)


@pytest.mark.parametrize("level", ["verbose", "debug"])
def test_log_level_verbose_and_debug_fill_the_log_file(mnode: MultusNode, level: str) -> None:
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            nad_manifest("missing", {"cniVersion": "1.0.0", "name": "missing", "type": "not-installed"}),
            pod_manifest("web", networks="blue"),
            pod_manifest("bad", networks="missing"),
        ],
    )
    log_file = mnode.tmp / "logs" / "multus.log"
    conf = mnode.multus_conf(logFile=str(log_file), logLevel=level)
    pod = mnode.pod()
    added = mnode.multus("ADD", conf, pod, name="web")
    added.ok()
    mnode.multus("DEL", conf, pod, name="web").ok()
    failed = mnode.multus("ADD", conf, mnode.pod(), name="bad", container_id="ctr-2")
    assert failed.code != 0
    lines = log_file.read_text().splitlines()
    text = "\n".join(lines)
    assert " INFO " in text and "ADD ctr-1: pod default/web" in text
    assert "ADD ctr-1: network kube-system/cluster on eth0: 10.10.0." in text
    assert "ADD ctr-1: network default/blue on net1: 10.20.0." in text
    assert "DEL ctr-1: network default/blue on net1 removed" in text and "DEL ctr-1 done" in text
    assert any(" ERROR " in line and "ADD ctr-2 failed" in line and "not-installed" in line for line in lines)
    assert (" DEBUG " in text) == (level == "debug")
    assert " INFO " not in added.stderr, "stderr keeps its own level (PYCNI_LOG_LEVEL)"


def test_retried_del_finishes_after_a_failing_delegate_del(mnode: MultusNode) -> None:
    gate = mnode.tmp / "stub-fails"
    gate.touch()
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            nad_manifest("flaky", mnode.stub("flaky", failOn="DEL", failWhile=str(gate))),
            nad_manifest("green", mnode.bridge("green", "mmg0", "10.50.0.0/24")),
            pod_manifest("web", networks="blue,flaky,green"),
        ],
    )
    pod = mnode.pod()
    conf = mnode.multus_conf()
    mnode.multus("ADD", conf, pod, name="web").ok()
    out = mnode.multus("DEL", conf, pod, name="web")
    assert out.code != 0 and "default/flaky on net2" in out.json["msg"]
    assert pod.link_names() == {"lo", "net2"} or pod.link_names() == {"lo"}
    assert mnode.plans() == ["ctr-1"], "the plan stays until every DEL succeeded"
    plan = json.loads((mnode.cni_dir / "ctr-1").read_text())
    assert [a["pycni"]["deleted"] for a in plan] == [True, True, False, True]

    gate.unlink()
    mnode.multus("DEL", conf, pod, name="web").ok()
    assert_nothing_left(mnode, pod)
    dels = [c for c in mnode.stub_calls() if c["cmd"] == "DEL"]
    assert len(dels) == 2 and all(c["ifname"] == "net2" for c in dels)


def test_check_finds_a_removed_secondary_interface(mnode: MultusNode) -> None:
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            pod_manifest("web", networks="blue"),
        ],
    )
    pod = mnode.pod()
    conf = mnode.multus_conf()
    mnode.multus("ADD", conf, pod, name="web").ok()
    mnode.multus("CHECK", conf, pod, name="web").ok()
    pod.run("ip", "link", "del", "net1")
    out = mnode.multus("CHECK", conf, pod, name="web")
    assert out.code != 0 and "default/blue on net1" in out.json["msg"], out.stdout
    mnode.multus("DEL", conf, pod, name="web").ok()
    assert_nothing_left(mnode, pod)


def test_gc_removes_an_orphaned_secondary_attachment(mnode: MultusNode) -> None:
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            pod_manifest("web", networks="blue"),
            pod_manifest("db", networks="blue"),
        ],
    )
    conf = mnode.multus_conf()
    kept, orphan = mnode.pod(), mnode.pod()
    mnode.multus("ADD", conf, kept, name="web", container_id="ctr-web").ok()
    mnode.multus("ADD", conf, orphan, name="db", container_id="ctr-db").ok()
    blue_leases = [lease for lease in mnode.leases() if lease.startswith("blue/")]
    assert len(blue_leases) == 2

    valid = [{"containerID": "ctr-web", "ifname": "eth0"}]
    mnode.multus("GC", {**conf, "cni.dev/valid-attachments": valid}, None).ok()
    assert mnode.plans() == ["ctr-web"]
    assert len([lease for lease in mnode.leases() if lease.startswith("blue/")]) == 1
    assert orphan.link_names() == {"lo"} and kept.link_names() == {"lo", "eth0", "net1"}
    assert all("ctr-db" not in name for name in mnode.cached_results())
    mnode.multus("DEL", conf, kept, name="web", container_id="ctr-web").ok()
    assert_nothing_left(mnode, kept)


def test_gc_without_a_plan_releases_the_secondary_address(mnode: MultusNode) -> None:
    """A lost plan: the secondary network's own GC, fanned out by multus, frees the address."""
    write_manifests(
        mnode.manifests,
        [
            *cluster_and_blue(mnode),
            pod_manifest("db", networks="blue"),
        ],
    )
    conf = mnode.multus_conf()
    orphan = mnode.pod()
    mnode.multus("ADD", conf, orphan, name="db", container_id="ctr-db").ok()
    (mnode.cni_dir / "ctr-db").unlink()
    orphan.run("ip", "link", "del", "net1")
    mnode.multus("GC", {**conf, "cni.dev/valid-attachments": []}, None).ok()
    assert not [lease for lease in mnode.leases() if lease.startswith("blue/")]
    assert mnode.cached_results() == []


def test_status_fans_out_to_every_network(mnode: MultusNode) -> None:
    write_manifests(
        mnode.manifests,
        [
            nad_manifest(
                "cluster", mnode.bridge("cluster", "mmc0", CLUSTER_SUBNET, gateway=True), "kube-system"
            ),
            nad_manifest("sick", mnode.stub("sick", cniVersion="1.1.0", failOn="STATUS")),
            pod_manifest("web", networks="sick"),
        ],
    )
    conf = mnode.multus_conf()
    assert mnode.multus("STATUS", conf, None).ok() is None
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web").ok()
    out = mnode.multus("STATUS", conf, None)
    assert out.code != 0 and out.json["code"] == 50 and "default/sick" in out.json["msg"]
    mnode.multus("DEL", conf, pod, name="web").ok()
    assert any(c["cmd"] == "STATUS" for c in mnode.stub_calls())


def test_static_delegates_and_cluster_network_from_conf_dir(mnode: MultusNode) -> None:
    """No API and no manifests: `delegates` only; a clusterNetwork by config name from confDir."""
    (mnode.tmp / "net.d" / "10-cluster.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "podnet",
                "plugins": [mnode.bridge("x", "mmc0", CLUSTER_SUBNET, gateway=True)],
            }
        )
    )
    conf = mnode.multus_conf("podnet", manifests="", defaultNetworks=["extra"])
    (mnode.tmp / "net.d" / "20-extra.conf").write_text(json.dumps(mnode.stub("extra")))
    pod = mnode.pod()
    result = mnode.multus("ADD", conf, pod).ok()
    assert result["ips"][0]["address"].startswith("10.10.0.")
    assert [(c["cmd"], c["ifname"]) for c in mnode.stub_calls()] == [("ADD", "net1")]
    assert "IgnoreUnknown=true" in mnode.stub_calls()[0]["args"]
    mnode.multus("DEL", conf, pod).ok()
    assert_nothing_left(mnode, pod)


def test_stub_is_exec_d_from_bin_dir(mnode: MultusNode) -> None:
    assert (mnode.stub_bin / STUB_TYPE).exists()
