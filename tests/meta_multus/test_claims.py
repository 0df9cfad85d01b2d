"""multus with DRA: NADs naming `<claim>/<request>` get the claim's VFs through `sriov`, and each
claimed device's network data lands in the claim's status. The API server stand-in (or a manifest
directory), the fake SR-IOV NIC, the real kernel for the VF stand-ins and the pod.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.fake_sysfs import FakeVf, build_sriov_node
from tests.helpers.podresources import FakePodResources
from tests.meta_multus import claims as dra
from tests.meta_multus.apiserver import FakeApiServer
from tests.meta_multus.claims import ClaimNode
from tests.meta_multus.helpers import MultusNode, nad_manifest, write_manifests

CLAIM_STATUS = "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/{}/status"


@pytest.fixture
def cnode(mnode: MultusNode) -> ClaimNode:
    hw = build_sriov_node(mnode.tmp / "sysfs", ((dra.PF, 0x3B, 0, "154c", ("iavf",) * 6),))
    cn = ClaimNode(mnode, hw)
    for vf in cn.vfs:
        assert vf.netdev is not None
        mnode.ns.run("ip", "link", "add", vf.netdev, "type", "veth", "peer", "name", f"{vf.netdev}p")
        mnode.ns.run("ip", "link", "set", f"{vf.netdev}p", "up")  # the wire's end: the VF gets a carrier
    cn.seed()
    mnode.env.update(PYCNI_SYSFS_ROOT=str(hw.sysfs.root), PYCNI_SRIOV_VF_STATE=str(cn.vf_state))
    return cn


def cluster_nad(node: MultusNode) -> dict[str, Any]:
    return nad_manifest(
        "cluster", node.bridge("cluster", "mmc0", "10.10.0.0/24", gateway=True), "kube-system"
    )


def objects(
    cn: ClaimNode, *, template: bool, allocated: list[FakeVf] | None, networks: str = "fast,fast"
) -> list[dict[str, Any]]:
    """The cluster network, NAD `fast` on `net/vfs`, the slice, the claim and pod `web`."""
    name = "web-net-x7k2p" if template else "vfs"
    claim = dra.claim_manifest(name, allocated)
    return [
        cluster_nad(cn.node),
        dra.sriov_nad(cn.node, f"net/{dra.REQUEST}"),
        dra.slice_manifest(cn.vfs),
        claim,
        dra.pod_with_claim(
            "web", networks, "vfs-template" if template else name, template=template, made=name
        ),
    ]


def populate(api: FakeApiServer, objs: list[dict[str, Any]]) -> None:
    dra.serve(api.cluster)
    for obj in objs:
        if obj["kind"] in ("Pod", "NetworkAttachmentDefinition"):
            api.cluster.add(obj)
        else:
            api.cluster.store.add(obj["kind"].lower() + "s", obj)


def assert_attached(cn: ClaimNode, pod: Any, vfs: list[FakeVf], macs: list[str]) -> None:
    """Each VF in the pod as net1, net2, ... with its own MAC, an address, and its PF-side settings."""
    links = pod.links()
    for n, (vf, mac) in enumerate(zip(vfs, macs, strict=True), start=1):
        assert links[f"net{n}"]["address"] == mac, (n, links)
        assert vf.netdev not in cn.node.ns.link_names()
        assert any(a.startswith("10.60.0.") for a in pod.addrs(f"net{n}"))
        assert cn.pf_side(vf)["vlan"] == 100 and cn.pf_side(vf)["spoofchk"] is True


def assert_given_back(cn: ClaimNode, pod: Any, seeded: dict[str, Any]) -> None:
    assert pod.link_names() == {"lo"}
    assert {vf.netdev for vf in cn.vfs} <= cn.node.ns.link_names()
    assert json.loads(cn.vf_state.read_text()) == seeded, "PF-side settings restored"
    assert cn.node.plans() == [] and cn.node.leases() == []


def assert_network_data(devices: list[dict[str, Any]], pod: Any, vfs: list[FakeVf]) -> None:
    ours = {d["device"]: d for d in devices if d["driver"] == dra.DRIVER}
    for n, vf in enumerate(vfs, start=1):
        entry = ours[dra.device_name(vf.address)]
        assert entry["pool"] == dra.POOL
        data = entry["networkData"]
        assert data["interfaceName"] == f"net{n}"
        assert data["hardwareAddress"] == pod.links()[f"net{n}"]["address"]
        assert data["ips"] and set(data["ips"]) <= pod.addrs(f"net{n}"), "CIDRs of the pod's addresses"
        assert [(c["type"], c["status"]) for c in entry["conditions"]] == [("Ready", "True")]


@pytest.mark.parametrize("template", [False, True], ids=["direct", "template"])
def test_claimed_vfs_attach_through_sriov_and_the_claim_gets_their_network_data(
    cnode: ClaimNode, api: FakeApiServer, template: bool
) -> None:
    vfs = cnode.vfs[2:4]
    objs = objects(cnode, template=template, allocated=vfs)
    claim = objs[3]
    other = cnode.vfs[5]  # a device of another request, configured by someone else
    claim["status"]["allocation"]["devices"]["results"].append(
        {"request": "other", "driver": dra.DRIVER, "pool": dra.POOL, "device": dra.device_name(other.address)}
    )
    theirs = {"driver": dra.DRIVER, "pool": dra.POOL, "device": dra.device_name(other.address),
              "networkData": {"interfaceName": "eth9"}}  # fmt: skip
    claim["status"]["devices"] = [theirs]
    populate(api, objs)
    api.cluster.store.collections[dra.API, "resourceclaims"].status_conflicts = 1
    seeded = json.loads(cnode.vf_state.read_text())
    macs = [cnode.mac(vf) for vf in vfs]
    conf = cnode.node.multus_conf(kubeconfig=str(api.kubeconfig(cnode.node.tmp / "kubeconfig")))
    pod = cnode.node.pod()

    cnode.node.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
    assert_attached(cnode, pod, vfs, macs)
    name = claim["metadata"]["name"]
    stored = api.cluster.store.items(dra.API, "resourceclaims")[0]
    assert stored["status"]["devices"][0] == theirs, "others' entries kept"
    assert_network_data(stored["status"]["devices"], pod, vfs)
    puts = [r for r in api.cluster.requests if r == ("PUT", CLAIM_STATUS.format(name))]
    assert len(puts) == 2, "one 409, then written"
    plan = json.loads((cnode.node.cni_dir / "ctr-1").read_text())
    assert [p["deviceID"] for p in plan[1:]] == [vf.address for vf in vfs]
    plugin = plan[1]["pycni"]["conflist"]["plugins"][0]
    assert plugin["pciBusID"] == plugin["runtimeConfig"]["deviceID"] == vfs[0].address

    api.stop()  # DEL needs no API server
    cnode.node.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    assert_given_back(cnode, pod, seeded)


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("unallocated", 11, "is not allocated yet"),
        ("short", 7, "it was allocated 1 and 1 are used by earlier networks"),
        ("no claim made yet", 11, "has no ResourceClaim yet"),
        ("no PCI address", 7, "has no PCI address"),
    ],
)
def test_claims_that_cannot_serve_fail_cleanly(
    cnode: ClaimNode, api: FakeApiServer, case: str, code: int, words: str
) -> None:
    template = case == "no claim made yet"
    objs = objects(cnode, template=template, allocated=None if case == "unallocated" else cnode.vfs[:2])
    if case == "short":
        objs[3] = dra.claim_manifest("vfs", cnode.vfs[:1])
    if case == "no claim made yet":
        objs[4].pop("status", None)
    if case == "no PCI address":
        objs[2] = dra.slice_manifest(cnode.vfs, without_pci=(cnode.vfs[1].address,))
    populate(api, objs)
    seeded = json.loads(cnode.vf_state.read_text())
    conf = cnode.node.multus_conf(kubeconfig=str(api.kubeconfig(cnode.node.tmp / "kubeconfig")))
    pod = cnode.node.pod()
    out = cnode.node.multus("ADD", conf, pod, name="web", uid="uid-web")
    assert out.code != 0 and out.json["code"] == code and words in out.json["msg"], out.stdout
    assert_given_back(cnode, pod, seeded)
    assert cnode.node.veths() == [] and cnode.node.cached_results() == []
    assert not [r for r in api.cluster.requests if r[0] == "PUT" and "resourceclaims" in r[1]]


def test_a_device_plugin_vf_and_a_claimed_vf_in_one_pod(cnode: ClaimNode, api: FakeApiServer) -> None:
    plugin_vf, claimed_vf = cnode.vfs[0], cnode.vfs[1]
    objs = objects(cnode, template=False, allocated=[claimed_vf], networks="dp,fast")
    objs.insert(1, dra.sriov_nad(cnode.node, "pycni.io/sriov_a", name="dp", subnet="10.60.0.0/24"))
    populate(api, objs)
    pod_resources = FakePodResources(Path(cnode.node.tmp_short) / "podres.sock")
    try:
        pod_resources.allocate("default", "web", "pycni.io/sriov_a", [plugin_vf.address])
        seeded = json.loads(cnode.vf_state.read_text())
        macs = [cnode.mac(plugin_vf), cnode.mac(claimed_vf)]
        conf = cnode.node.multus_conf(
            kubeconfig=str(api.kubeconfig(cnode.node.tmp / "kubeconfig")),
            podResourcesSocket=str(pod_resources.socket),
        )
        pod = cnode.node.pod()
        cnode.node.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
        assert_attached(cnode, pod, [plugin_vf, claimed_vf], macs)
        devices = api.cluster.store.items(dra.API, "resourceclaims")[0]["status"]["devices"]
        assert [d["device"] for d in devices] == [dra.device_name(claimed_vf.address)]
        assert devices[0]["networkData"]["interfaceName"] == "net2"
        cnode.node.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
        assert_given_back(cnode, pod, seeded)
    finally:
        pod_resources.stop()


def test_a_status_that_cannot_be_written_is_an_event_not_a_failed_add(
    cnode: ClaimNode, api: FakeApiServer
) -> None:
    vfs = cnode.vfs[:2]
    populate(api, objects(cnode, template=False, allocated=vfs))
    api.cluster.store.collections[dra.API, "resourceclaims"].status_conflicts = 100  # never gets through
    conf = cnode.node.multus_conf(kubeconfig=str(api.kubeconfig(cnode.node.tmp / "kubeconfig")))
    pod = cnode.node.pod()
    cnode.node.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
    assert pod.link_names() == {"lo", "eth0", "net1", "net2"}
    warned = [e for e in api.cluster.events if e["reason"] == "NetworkDataNotWritten"]
    assert len(warned) == 1 and "ResourceClaim default/vfs" in warned[0]["message"]
    assert warned[0]["type"] == "Warning"
    assert "devices" not in api.cluster.store.items(dra.API, "resourceclaims")[0]["status"]
    cnode.node.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    assert pod.link_names() == {"lo"} and cnode.node.plans() == []


@pytest.mark.parametrize("template", [False, True], ids=["direct", "template"])
def test_from_a_manifest_directory(cnode: ClaimNode, template: bool) -> None:
    vfs = cnode.vfs[2:4]
    objs = objects(cnode, template=template, allocated=vfs)
    write_manifests(cnode.node.manifests, objs)
    seeded = json.loads(cnode.vf_state.read_text())
    macs = [cnode.mac(vf) for vf in vfs]
    conf = cnode.node.multus_conf()
    pod = cnode.node.pod()
    cnode.node.multus("ADD", conf, pod, name="web").ok()
    assert_attached(cnode, pod, vfs, macs)
    name = objs[3]["metadata"]["name"]
    record = cnode.node.cni_dir / "claim-status" / "default" / f"{name}.json"
    assert_network_data(json.loads(record.read_text())["devices"], pod, vfs)
    assert [s["interface"] for s in cnode.node.network_status("web")] == ["eth0", "net1", "net2"]

    cnode.node.multus("DEL", conf, pod, name="web").ok()
    assert_given_back(cnode, pod, seeded)
    assert not record.exists() and not record.parent.exists()
