"""Fixtures for the device plugin: fake sysfs stands in for SR-IOV hardware, veth pairs in a
throw-away namespace stand in for the PF and VF netdevs where link state matters, and a kubelet
stand-in plays the other end of the gRPC APIs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from pycni.device_plugin.options import Options
from pycni.device_plugin.service import DevicePluginService
from pycni.k8s.pools.config import load_config
from tests.device_plugin.kubelet import FakeKubelet
from tests.helpers.fake_sysfs import FakeNode, build_sriov_node
from tests.helpers.podresources import FakePodResources

PREFIX = "pycni.io"

#: Pools over the default fake node (4 PFs x 8 VFs; see tests.helpers.fake_sysfs.DEFAULT_LAYOUT).
CONFIG: dict[str, Any] = {
    "resourceList": [
        {"resourceName": "sriov_a", "selectors": {"pfNames": ["ens1f0#0-3"], "drivers": ["iavf"]}},
        {
            "resourceName": "sriov_b",
            "selectors": [{"pfNames": ["ens1f0#4,5"]}, {"rootDevices": ["0000:3c:00.0#0-1"]}],
        },
        {"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"]}},
        {"resourceName": "mlx", "selectors": {"vendors": ["15b3"], "drivers": ["mlx5_core"]}},
    ]
}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temp dir: unix socket paths must stay under 108 bytes."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    path = Path(tempfile.mkdtemp(prefix="dp", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def node(workdir: Path) -> FakeNode:
    return build_sriov_node(workdir / "sys")


@pytest.fixture
def links_ns(node: FakeNode) -> Iterator[str]:
    """A namespace with an up veth stand-in (peer `<name>p`) for every PF and VF netdev of `node`."""
    name = f"dpt-{uuid.uuid4().hex[:10]}"
    netns.create(name)
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            for ifname in node.netdevs:
                ipr.link("add", ifname=ifname, kind="veth", peer=f"{ifname}p")
                for end in (ifname, f"{ifname}p"):
                    ipr.link("set", index=ipr.link_lookup(ifname=end)[0], state="up")
        yield name
    finally:
        netns.remove(name)


def set_link(ns: str, ifname: str, state: str) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state=state)


def delete_link(ns: str, ifname: str) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=ifname)[0])


def add_link(ns: str, ifname: str) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("add", ifname=ifname, kind="veth", peer=f"{ifname}p")
        for end in (ifname, f"{ifname}p"):
            ipr.link("set", index=ipr.link_lookup(ifname=end)[0], state="up")


@dataclass
class Running:
    """A device-plugin service running in a thread against the fake node, and what a test needs to poke it."""

    service: DevicePluginService
    opts: Options
    kubelet: FakeKubelet | None
    thread: threading.Thread
    node: FakeNode
    reconciles: list[int] = field(default_factory=list)

    def socket(self, resource: str) -> Path:
        return self.service.socket_dir / f"{PREFIX}_{resource}.sock"

    def stop(self) -> None:
        self.service.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "service did not stop"


@pytest.fixture
def start_service(workdir: Path, node: FakeNode) -> Iterator[Callable[..., Running]]:
    """Starts a service (kubelet.sock mode unless `watcher=True`); stops it after the test.

    `held` (resource → device IDs) starts the kubelet's pod-resources API with one pod holding
    them; without it the service finds no such API.
    """
    started: list[Running] = []
    kubelets: list[FakeKubelet] = []
    pod_resources: list[FakePodResources] = []

    def start(
        config: dict[str, Any] | None = None,
        *,
        watcher: bool = False,
        links_netns: str | None = None,
        kubelet: bool = True,
        use_cdi: bool = False,
        held: dict[str, list[str]] | None = None,
    ) -> Running:
        conf_path = workdir / "conf" / "config.json"
        conf_path.parent.mkdir(exist_ok=True)
        conf_path.write_text(json.dumps(config or CONFIG))
        kubelet_dir = workdir / "device-plugins"
        kubelet_dir.mkdir(exist_ok=True)
        registry = workdir / "plugins_registry"
        if watcher:
            registry.mkdir(exist_ok=True)
        fake = None
        if kubelet:
            fake = FakeKubelet(kubelet_dir)
            fake.start()
            kubelets.append(fake)
        pod_resources_socket = workdir / "pod-resources.sock"
        if held is not None and not pod_resources:
            pod_resources.append(FakePodResources(pod_resources_socket))
        for resource, ids in (held or {}).items():
            pod_resources[0].allocate("default", "holder", resource, ids)
        opts = Options(
            config_path=conf_path,
            resource_prefix=PREFIX,
            sysfs_root=node.sysfs.root,
            kubelet_dir=kubelet_dir,
            plugins_registry_dir=registry,
            devinfo_dir=workdir / "devinfo",
            cdi_dir=workdir / "cdi",
            use_cdi=use_cdi,
            links_netns=links_netns,
            use_netlink=links_netns is not None,
            use_udev=False,
            pod_resources_socket=pod_resources_socket,
        )
        service = DevicePluginService(opts, load_config(conf_path, PREFIX))
        running = Running(service, opts, fake, threading.Thread(target=lambda: None), node)
        service.on_reconcile = lambda: running.reconciles.append(1)
        service.start()
        running.thread = threading.Thread(target=service.run, name="dp-service", daemon=True)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()
    for fake in kubelets:
        fake.stop()
    for api in pod_resources:
        api.stop()
