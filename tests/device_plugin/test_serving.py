"""The real gRPC servers against the kubelet stand-in, over a fake sysfs tree standing in for
4 SR-IOV PFs x 8 VFs (mixed iavf / mlx5_core / vfio-pci, two NUMA nodes)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from tests.device_plugin.conftest import PREFIX, Running
from tests.device_plugin.kubelet import Stream, plugin, wait_for, watcher_register

POOLS = {
    "sriov_a": ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"],
    "sriov_b": ["0000:3b:02.4", "0000:3b:02.5", "0000:3c:02.0", "0000:3c:02.1"],
    "dpdk": ["0000:3b:02.6", "0000:3b:02.7", "0000:86:02.4", "0000:86:02.5", "0000:86:02.6", "0000:86:02.7"],
    "mlx": ["0000:86:02.0", "0000:86:02.1", "0000:86:02.2", "0000:86:02.3"]
    + [f"0000:87:02.{i}" for i in range(8)],
}


def test_registers_each_pool_through_kubelet_sock(start_service: Callable[..., Running]) -> None:
    run = start_service()
    kubelet = run.kubelet
    assert kubelet is not None
    wait_for(lambda: len(kubelet.registrations) >= 4, what="4 Registers")
    requests = list(kubelet.registrations)
    by_name = {r.resource_name: r for r in requests}
    assert set(by_name) == {f"{PREFIX}/{name}" for name in POOLS}
    for name in POOLS:
        req = by_name[f"{PREFIX}/{name}"]
        assert req.version == "v1beta1"
        assert req.endpoint == f"{PREFIX}_{name}.sock"  # a file name relative to the kubelet dir
        assert req.options.get_preferred_allocation_available
        assert stat.S_ISSOCK((run.opts.kubelet_dir / req.endpoint).stat().st_mode)
    assert len(requests) == 4  # one registration per pool


def test_plugin_watcher_mode_serves_registration_and_never_calls_register(
    start_service: Callable[..., Running],
) -> None:
    run = start_service(watcher=True)
    sock = run.opts.plugins_registry_dir / f"{PREFIX}_sriov_a.sock"
    assert run.service.socket_dir == run.opts.plugins_registry_dir
    info = watcher_register(sock)
    assert (info.type, info.name, info.endpoint) == ("DevicePlugin", f"{PREFIX}/sriov_a", str(sock))
    assert "v1beta1" in info.supported_versions
    wait_for(
        lambda: run.service.registered.get(f"{PREFIX}/sriov_a"), what="NotifyRegistrationStatus recorded"
    )
    stream = Stream(sock)  # the same socket also serves the DevicePlugin API
    try:
        assert sorted(stream.next()) == POOLS["sriov_a"]
    finally:
        stream.close()
    assert run.kubelet is not None and run.kubelet.registrations == []


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_list_and_watch_lists_each_pool_per_selectors(
    start_service: Callable[..., Running], pool: str
) -> None:
    run = start_service()
    stream = Stream(run.socket(pool))
    try:
        first = stream.next_raw()
    finally:
        stream.close()
    assert sorted(d.ID for d in first.devices) == POOLS[pool]
    assert {d.health for d in first.devices} == {"Healthy"}
    numa = {d.ID: [n.ID for n in d.topology.nodes] for d in first.devices}
    assert all(nodes == ([0] if dev.startswith("0000:3") else [1]) for dev, nodes in numa.items())


def test_exclude_topology_drops_numa(start_service: Callable[..., Running]) -> None:
    config = {
        "resourceList": [{"resourceName": "a", "excludeTopology": True, "selectors": {"drivers": ["iavf"]}}]
    }
    run = start_service(config)
    stream = Stream(run.socket("a"))
    try:
        first = stream.next_raw()
    finally:
        stream.close()
    assert len(first.devices) == 6 + 8
    assert all(len(d.topology.nodes) == 0 for d in first.devices)


def allocate(run: Running, pool: str, ids: list[str]) -> Any:
    request = dp.AllocateRequest(container_requests=[dp.ContainerAllocateRequest(devices_ids=ids)])
    return plugin(run.socket(pool)).Allocate(request, timeout=5).container_responses[0]


def test_allocate_netdev_vfs_env_info_and_no_device_nodes(start_service: Callable[..., Running]) -> None:
    config = {
        "resourceList": [
            {
                "resourceName": "sriov_a",
                "selectors": {"pfNames": ["ens1f0#0-3"]},
                "additionalInfo": {"*": {"k": "all"}, "0000:3b:02.1": {"k": "one"}},
            }
        ]
    }
    run = start_service(config)
    resp = allocate(run, "sriov_a", ["0000:3b:02.1", "0000:3b:02.0"])
    assert resp.envs["PCIDEVICE_PYCNI_IO_SRIOV_A"] == "0000:3b:02.1,0000:3b:02.0"
    info = json.loads(resp.envs["PCIDEVICE_PYCNI_IO_SRIOV_A_INFO"])
    assert info["0000:3b:02.1"] == {"generic": {"deviceID": "0000:3b:02.1"}, "extra": {"k": "one"}}
    assert info["0000:3b:02.0"]["extra"] == {"k": "all"}
    assert list(resp.devices) == [] and list(resp.mounts) == []
    devinfo = run.opts.devinfo_dir / f"{PREFIX}-sriov_a-0000:3b:02.1-device.json"
    assert json.loads(devinfo.read_text()) == {
        "type": "pci",
        "version": "1.1.0",
        "pci": {"pci-address": "0000:3b:02.1", "pf-pci-address": "0000:3b:00.0"},
    }
    assert stat.S_IMODE(devinfo.stat().st_mode) == 0o444
    assert not list(run.opts.devinfo_dir.glob(".*"))  # no temp files left behind
    # the next Allocate of the device finds its file as it would write it: left as it is ...
    written = devinfo.stat().st_ino
    allocate(run, "sriov_a", ["0000:3b:02.1"])
    assert devinfo.stat().st_ino == written
    # ... and one that differs (or is gone) is written anew
    devinfo.chmod(0o644)
    devinfo.write_text("{}")
    allocate(run, "sriov_a", ["0000:3b:02.1"])
    assert json.loads(devinfo.read_text())["pci"]["pci-address"] == "0000:3b:02.1"
    assert stat.S_IMODE(devinfo.stat().st_mode) == 0o444


def test_allocate_vfio_devices_get_vfio_nodes_from_sysfs(start_service: Callable[..., Running]) -> None:
    run = start_service()
    vfs = {vf.address: vf for vf in run.node.vfs}
    ids = ["0000:3b:02.6", "0000:86:02.4"]
    resp = allocate(run, "dpdk", ids)
    specs = [(d.container_path, d.host_path, d.permissions) for d in resp.devices]
    groups = [vfs[i].iommu_group for i in ids]
    assert specs == [
        ("/dev/vfio/vfio", "/dev/vfio/vfio", "rw"),
        (f"/dev/vfio/{groups[0]}", f"/dev/vfio/{groups[0]}", "rw"),
        (f"/dev/vfio/{groups[1]}", f"/dev/vfio/{groups[1]}", "rw"),
    ]
    info = json.loads(resp.envs["PCIDEVICE_PYCNI_IO_DPDK_INFO"])
    assert info["0000:86:02.4"]["vfio"] == {"mount": "/dev/vfio/vfio", "dev-mount": f"/dev/vfio/{groups[1]}"}
    for dev in ids:
        assert (run.opts.devinfo_dir / f"{PREFIX}-dpdk-{dev}-device.json").exists()


def test_allocate_unknown_device_is_an_error(start_service: Callable[..., Running]) -> None:
    run = start_service()
    with pytest.raises(grpc.RpcError) as err:
        allocate(run, "sriov_a", ["0000:3b:02.0", "0000:3b:02.6"])  # .6 belongs to another pool
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "0000:3b:02.6" in (err.value.details() or "")
    assert not list(run.opts.devinfo_dir.glob("*sriov_a*"))


def test_allocate_with_cdi_returns_cdi_devices_and_writes_specs(
    start_service: Callable[..., Running],
) -> None:
    run = start_service(use_cdi=True)
    resp = allocate(run, "dpdk", ["0000:3b:02.6"])
    assert [c.name for c in resp.cdi_devices] == [f"{PREFIX}/net-pci=0000:3b:02.6"]
    assert list(resp.devices) == []
    spec_file = run.opts.cdi_dir / f"pycni-{PREFIX}-dpdk.json"
    assert stat.S_IMODE(spec_file.stat().st_mode) == 0o644
    spec = json.loads(spec_file.read_text())
    assert spec["kind"] == f"{PREFIX}/net-pci"
    assert sorted(d["name"] for d in spec["devices"]) == POOLS["dpdk"]


def test_sigterm_path_removes_sockets_and_devinfo(start_service: Callable[..., Running]) -> None:
    run = start_service()
    allocate(run, "sriov_a", ["0000:3b:02.0"])
    assert list(run.opts.devinfo_dir.iterdir())
    run.stop()
    assert not [p for p in run.opts.kubelet_dir.glob("*.sock") if p.name != "kubelet.sock"]
    assert list(run.opts.devinfo_dir.iterdir()) == []


def test_get_preferred_allocation_over_grpc(start_service: Callable[..., Running]) -> None:
    config = {
        "resourceList": [
            {"resourceName": "all", "allocationPolicy": "spread", "selectors": {"drivers": ["iavf"]}}
        ]
    }
    run = start_service(config)
    available = [f"0000:3b:02.{i}" for i in range(6)] + [f"0000:3c:02.{i}" for i in range(8)]
    request = dp.PreferredAllocationRequest(
        container_requests=[
            dp.ContainerPreferredAllocationRequest(
                available_deviceIDs=available, must_include_deviceIDs=["0000:3c:02.5"], allocation_size=3
            )
        ]
    )
    stub = plugin(run.socket("all"))
    assert stub.GetDevicePluginOptions(dp.Empty(), timeout=5).get_preferred_allocation_available
    got = list(stub.GetPreferredAllocation(request, timeout=5).container_responses[0].deviceIDs)
    assert got[0] == "0000:3c:02.5" and len(got) == 3
    assert {d[:7] for d in got} == {"0000:3b", "0000:3c"}  # spread across both PFs
