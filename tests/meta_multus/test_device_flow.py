"""The SR-IOV flow end to end on the fake sysfs tree: the device plugin advertises VFs, a kubelet
stand-in allocates one to the pod and serves it on pod-resources, multus looks it up and the
delegate (`sriov`, or `host-device` taking the deviceID) moves that VF into the pod; DEL gives it back.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycni.device_plugin.options import Options
from pycni.device_plugin.service import DevicePluginService
from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from pycni.k8s.pools.config import load_config
from tests.device_plugin.kubelet import FakeKubelet, Stream, plugin, wait_for
from tests.helpers.fake_sysfs import FakeNode, build_sriov_node
from tests.helpers.podresources import FakePodResources
from tests.meta_multus.helpers import MultusNode, nad_manifest, pod_manifest, write_manifests

PREFIX = "pycni.io"
RESOURCE = f"{PREFIX}/sriov_a"


@dataclass
class Kubelet:
    """The kubelet's two roles here: device manager (registration, Allocate) and pod-resources."""

    devices: FakeKubelet
    pod_resources: FakePodResources
    service: DevicePluginService
    node: FakeNode
    socket: Path

    def allocate(self, namespace: str, pod: str, count: int = 1) -> list[str]:
        """Take `count` healthy advertised devices for the pod, as the device manager does."""
        stream = Stream(self.socket)
        try:
            advertised = stream.until(lambda devices: len(devices) > 0, timeout=10)
        finally:
            stream.close()
        ids = sorted(d for d, health in advertised.items() if health == "Healthy")[:count]
        request = dp.AllocateRequest(container_requests=[dp.ContainerAllocateRequest(devices_ids=ids)])
        plugin(self.socket).Allocate(request, timeout=5)
        self.pod_resources.allocate(namespace, pod, RESOURCE, ids)
        return ids


@pytest.fixture
def kubelet(mnode: MultusNode) -> Iterator[Kubelet]:
    work = mnode.tmp
    node = build_sriov_node(work / "sysfs")
    conf_path = work / "dp-config.json"
    conf_path.write_text(
        json.dumps(
            {
                "resourceList": [
                    {"resourceName": "sriov_a", "selectors": {"pfNames": ["ens1f0#0-3"], "drivers": ["iavf"]}}
                ]
            }
        )
    )
    sockets = Path(mnode.tmp_short) / "dp"
    sockets.mkdir()
    devices = FakeKubelet(sockets)
    devices.start()
    opts = Options(
        config_path=conf_path,
        resource_prefix=PREFIX,
        sysfs_root=node.sysfs.root,
        kubelet_dir=sockets,
        plugins_registry_dir=work / "no-registry",
        devinfo_dir=work / "devinfo" / "dp",
        cdi_dir=work / "cdi",
        use_cdi=False,
        links_netns=None,
        use_netlink=False,
        use_udev=False,
        pod_resources_socket=None,
    )
    service = DevicePluginService(opts, load_config(conf_path, PREFIX))
    service.start()
    thread = threading.Thread(target=service.run, name="dp-service", daemon=True)
    thread.start()
    pod_resources = FakePodResources(Path(mnode.tmp_short) / "podres.sock")
    try:
        wait_for(lambda: devices.registered(RESOURCE), 10, "the device plugin's registration")
        yield Kubelet(devices, pod_resources, service, node, sockets / f"{PREFIX}_sriov_a.sock")
    finally:
        service.request_stop()
        thread.join(10)
        pod_resources.stop()
        devices.stop()


def vf_stand_in(mnode: MultusNode, kubelet: Kubelet, address: str) -> str:
    """The VF's netdev, as a veth named like it in the node netns (the fake tree names it)."""
    vf = next(v for v in kubelet.node.vfs if v.address == address)
    assert vf.netdev is not None
    mnode.ns.run("ip", "link", "add", vf.netdev, "type", "veth", "peer", "name", f"{vf.netdev}p")
    return vf.netdev


def write_fast_network(mnode: MultusNode, delegate: dict[str, Any], networks: str) -> None:
    """The cluster network, the NAD `fast` on the VF resource, and pod `web` selecting `networks`."""
    write_manifests(
        mnode.manifests,
        [
            nad_manifest(
                "cluster", mnode.bridge("cluster", "mmc0", "10.10.0.0/24", gateway=True), "kube-system"
            ),
            nad_manifest("fast", delegate, resource=RESOURCE),
            pod_manifest("web", networks=networks),
        ],
    )


def run_flow(mnode: MultusNode, kubelet: Kubelet, delegate: dict[str, Any], env: dict[str, str]) -> None:
    ids = kubelet.allocate("default", "web")
    netdev = vf_stand_in(mnode, kubelet, ids[0])
    mac = mnode.ns.links()[netdev]["address"]
    write_fast_network(mnode, delegate, "fast")
    mnode.env.update(env, PYCNI_SYSFS_ROOT=str(kubelet.node.sysfs.root))
    conf = mnode.multus_conf(podResourcesSocket=str(kubelet.pod_resources.socket))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web").ok()

    assert pod.links()["net1"]["address"] == mac and netdev not in mnode.ns.link_names()
    assert any(a.startswith("10.60.0.") for a in pod.addrs("net1"))
    status = mnode.network_status("web")[1]
    assert status["name"] == "default/fast" and status["interface"] == "net1"
    assert status["device-info"]["pci"]["pci-address"] == ids[0]
    copy = mnode.tmp / "devinfo" / "cni" / "default-fast-ctr-1_net1"
    assert json.loads(copy.read_text())["pci"]["pci-address"] == ids[0]
    plan = json.loads((mnode.cni_dir / "ctr-1").read_text())  # multus-cni's array, ours inside
    assert plan[1]["deviceID"] == ids[0] and plan[1]["pycni"]["deviceID"] == ids[0]
    assert plan[1]["pycni"]["conflist"]["plugins"][0]["pciBusID"] == ids[0]
    assert kubelet.pod_resources.calls[:1] == ["Get"]

    kubelet.pod_resources.stop()  # DEL needs neither the kubelet nor the API
    mnode.multus("DEL", conf, pod, name="web").ok()
    assert pod.link_names() == {"lo"} and netdev in mnode.ns.link_names()
    assert mnode.ns.links()[netdev]["address"] == mac
    assert not copy.exists() and mnode.plans() == [] and mnode.leases() == []


def test_host_device_takes_the_allocated_vf(mnode: MultusNode, kubelet: Kubelet) -> None:
    delegate = {
        "cniVersion": "1.0.0",
        "name": "fast",
        "type": "host-device",
        "ipam": mnode.ipam("10.60.0.0/24"),
    }
    run_flow(mnode, kubelet, delegate, {})


def test_sriov_takes_the_allocated_vf(mnode: MultusNode, kubelet: Kubelet) -> None:
    delegate = {"cniVersion": "1.0.0", "name": "fast", "type": "sriov", "ipam": mnode.ipam("10.60.0.0/24")}
    run_flow(mnode, kubelet, delegate, {"PYCNI_SRIOV_VF_STATE": str(mnode.tmp / "vf-state.json")})


def test_a_second_network_of_the_resource_needs_a_second_device(mnode: MultusNode, kubelet: Kubelet) -> None:
    kubelet.allocate("default", "web", count=1)
    delegate = {
        "cniVersion": "1.0.0",
        "name": "fast",
        "type": "host-device",
        "ipam": mnode.ipam("10.60.0.0/24"),
    }
    write_fast_network(mnode, delegate, "fast,fast")
    pod = mnode.pod()
    out = mnode.multus(
        "ADD", mnode.multus_conf(podResourcesSocket=str(kubelet.pod_resources.socket)), pod, name="web"
    )
    assert out.code != 0 and "allocated 1 to this pod and 1 are used" in out.json["msg"], out
    assert pod.link_names() == {"lo"} and mnode.plans() == []
