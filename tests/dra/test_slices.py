"""ResourceSlices: what the driver publishes for the node's VFs (2 PFs x 8 VFs, kernel-netdev and
VFIO mixed), and how it keeps them current: numvfs changes, config changes, slices it did not write,
more devices than one slice holds, an API server that is down at first. The stand-in API server
refuses anything the real one would (schema and the resource API's rules)."""

from __future__ import annotations

import json
from typing import Any

from tests.dra.node import DPDK, DRIVER, NETDEV, NODE, RESOURCE_API, DraNode, add_links
from tests.helpers.poll import wait_until


def attrs(device: dict[str, Any]) -> dict[str, Any]:
    """Attribute values without their type wrapper: {"vfIndex": 3, ...}."""
    return {name: next(iter(value.values())) for name, value in device["attributes"].items()}


def test_slices_published_with_every_attribute(dnode: DraNode) -> None:
    dnode.start()
    (slice_,) = dnode.slices()
    spec = slice_["spec"]
    assert spec["driver"] == DRIVER and spec["nodeName"] == NODE
    assert spec["pool"]["name"] == NODE and spec["pool"]["resourceSliceCount"] == 1
    assert spec["pool"]["generation"] >= 1
    (owner,) = slice_["metadata"]["ownerReferences"]
    node_uid = dnode.api.cluster.store.items("v1", "nodes")[0]["metadata"]["uid"]
    assert owner == {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": node_uid, "controller": True}
    devices = {d["name"]: d for d in spec["devices"]}
    assert sorted(devices) == sorted(vf.address.replace(":", "-").replace(".", "-") for vf in dnode.hw.vfs)
    assert attrs(devices["0000-3b-02-3"]) == {
        "resource.kubernetes.io/pciBusID": "0000:3b:02.3",
        "k8s.cni.cncf.io/deviceID": "0000:3b:02.3",
        "k8s.cni.cncf.io/resourceName": NETDEV,
        "resourceName": NETDEV,
        "pfName": "ens1f0",
        "pfPciAddress": "0000:3b:00.0",
        "vfIndex": 3,
        "numaNode": 0,
        "vendor": "8086",
        "deviceID": "154c",
        "driver": "iavf",
        "linkType": "ether",
        "healthy": True,
    }
    vfio = attrs(devices["0000-3c-02-6"])
    assert (vfio["resourceName"], vfio["driver"], vfio["pfName"], vfio["vfIndex"], vfio["numaNode"]) == (
        DPDK, "vfio-pci", "ens1f1", 6, 1
    )  # fmt: skip
    assert vfio["linkType"] == "ether"  # from the PF: a VFIO VF has no netdev
    assert all("taints" not in d for d in spec["devices"])
    by_resource = [attrs(d)["resourceName"] for d in spec["devices"]]
    assert (by_resource.count(NETDEV), by_resource.count(DPDK)) == (10, 6)


def test_slices_we_did_not_write_are_removed_at_start(dnode: DraNode) -> None:
    store = dnode.api.cluster.store

    def stale(driver: str, node: str, generation: int) -> dict[str, Any]:
        return {
            "apiVersion": RESOURCE_API, "kind": "ResourceSlice",
            "metadata": {"name": f"{node}-{driver}-old{generation}"},
            "spec": {"driver": driver, "nodeName": node,
                     "pool": {"name": node, "generation": generation, "resourceSliceCount": 2},
                     "devices": [{"name": "gone-device"}]},
        }  # fmt: skip

    for driver, node, generation in (
        (DRIVER, NODE, 7),
        (DRIVER, NODE, 8),
        (DRIVER, "node-b", 1),
        ("x.io", NODE, 1),
    ):
        store.add("resourceslices", stale(driver, node, generation))
    dnode.start()
    names = {s["metadata"]["name"] for s in dnode.slices()}
    assert f"{NODE}-{DRIVER}-old7" not in names and f"{NODE}-{DRIVER}-old8" not in names
    assert {f"node-b-{DRIVER}-old1", f"{NODE}-x.io-old1"} <= names  # other nodes' and drivers' stay
    ours = [s for s in dnode.slices() if s["spec"]["driver"] == DRIVER and s["spec"]["nodeName"] == NODE]
    assert len(ours) == 1 and ours[0]["spec"]["pool"]["generation"] > 8  # newer than anything seen
    assert len(dnode.pool_devices()) == 16


def test_numvfs_change_updates_the_slices_with_a_new_generation(dnode: DraNode) -> None:
    dnode.start()
    generation = dnode.slices()[0]["spec"]["pool"]["generation"]
    pf = dnode.hw.pfs["ens1f1"]
    for index in range(7, 3, -1):  # the kernel takes VFs away when sriov_numvfs is lowered
        dnode.hw.sysfs.remove_vf(pf, index)
    devices = dnode.wait_pool(12)  # 4 VFs gone
    assert "0000-3c-02-7" not in devices and "0000-3c-02-3" in devices
    (slice_,) = dnode.slices()
    assert slice_["spec"]["pool"]["generation"] > generation
    for index in range(4, 8):
        dnode.hw.sysfs.add_vf(pf, index, f"0000:3c:02.{index}", device="154c", driver="vfio-pci",
                              numa_node=1, iommu_group=300 + index)  # fmt: skip
    devices = dnode.wait_pool(16)  # back
    assert attrs(devices["0000-3c-02-7"])["resourceName"] == DPDK


def test_config_change_moves_devices_between_resources(dnode: DraNode) -> None:
    dnode.start()
    conf = dnode.workdir / "conf" / "config.json"
    config = json.loads(conf.read_text())
    config["resourceList"][0]["selectors"]["pfNames"] = ["ens1f0"]
    tmp = conf.with_name(".config.json.tmp")
    tmp.write_text(json.dumps(config))
    tmp.rename(conf)  # as a ConfigMap update does
    devices = dnode.wait_pool(12)  # ens1f1's netdev VFs dropped
    assert "0000-3c-02-0" not in devices and attrs(devices["0000-3b-02-0"])["resourceName"] == NETDEV


def test_more_than_128_devices_are_split_into_slices_of_one_pool(dnode: DraNode) -> None:
    sysfs = dnode.hw.sysfs
    for pf_index in range(4):
        pf = f"0000:{0x40 + pf_index:02x}:00.0"
        sysfs.add_pci(pf, driver="i40e", netdevs=[f"big{pf_index}"], totalvfs=64, numa_node=0)
        for index in range(40):
            vf = f"0000:{0x40 + pf_index:02x}:{2 + index // 8:02x}.{index % 8}"
            group = 1000 + pf_index * 64 + index
            sysfs.add_vf(pf, index, vf, device="154c", driver="vfio-pci", iommu_group=group)
    add_links(dnode.ns, [f"big{i}" for i in range(4)])
    dnode.start()
    dnode.wait_pool(176)
    slices = dnode.slices()
    assert len(slices) == 2 and {s["spec"]["pool"]["resourceSliceCount"] for s in slices} == {2}
    assert len({s["spec"]["pool"]["generation"] for s in slices}) == 1
    assert sorted(len(s["spec"]["devices"]) for s in slices) == [48, 128]


def test_api_server_failing_at_first_is_retried_and_readiness_waits(dnode: DraNode) -> None:
    dnode.api.cluster.store.failures = 3  # the first calls get 503
    dnode.start(wait=False)
    wait_until(dnode.ready, timeout=30, what="ready once the slices are published")
    assert len(dnode.pool_devices()) == 16
    retried = [e for e in dnode.logs() if e["msg"] == "cannot publish ResourceSlices, will retry"]
    assert retried and "503" in retried[0]["error"]
