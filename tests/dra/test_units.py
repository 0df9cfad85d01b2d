"""The DRA driver's pure parts and its pieces in isolation: slice layout, device names and attributes,
claim parsing, the checkpoint, the publisher against an in-memory API, the health stream's
heartbeat, Prepare when the checkpoint cannot be written."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from pycni.dra import checkpoint, server
from pycni.dra.checkpoint import PreparedClaim, PreparedDevice
from pycni.dra.claims import ClaimError, ClaimRef, allocated
from pycni.dra.devices import DraDevice, attributes, device_name
from pycni.dra.inventory import HealthEntry, Inventory, Snapshot, report
from pycni.dra.prepare import Preparer
from pycni.dra.publisher import Publisher
from pycni.dra.slices import chunks, device_entry
from pycni.hw.discovery import Device
from pycni.k8s.api import drahealth_v1alpha1_pb2
from pycni.k8s.pools.config import parse_config
from pycni.k8s.pools.membership import pools_of
from pycni.k8s.resourceapi import Conflict
from tests.dra.apirules import slice_problem
from tests.helpers.poll import wait_until
from tests.helpers.rest_store import ObjectStore

DRIVER, NODE = "sriov.pycni.io", "node-a"
POOL = pools_of(parse_config({"resourceList": [{"resourceName": "vfs"}]}, "example.com"), "example.com")[0]


def device(address: str, *, vf_index: int | None = 0, pf: str | None = "0000:3b:00.0", **kw: Any) -> Device:
    base = dict(
        address=address, vendor="8086", device="154c", base_class=2, driver="iavf", netdevs=("v0",),
        numa_node=0, iommu_group=7, noiommu=False, pf_address=pf, pf_netdevs=("ens1f0",) if pf else (),
        vf_index=vf_index, link_type="ether", acpi_index=None, uio=(), driver_now="iavf", netdevs_now=("v0",),
    )  # fmt: skip
    return Device(**(base | kw))  # type: ignore[arg-type]


def entry(index: int, tainted: bool = False) -> dict[str, Any]:
    return {"name": f"d{index}"} | (
        {"taints": [{"key": "x/unhealthy", "effect": "NoSchedule"}]} if tainted else {}
    )


def test_slices_hold_at_most_128_devices_and_64_where_one_is_tainted() -> None:
    assert [len(c) for c in chunks(entry(i) for i in range(300))] == [128, 128, 44]
    one_tainted = [*map(entry, range(100)), entry(100, True), *map(entry, range(101, 200))]
    assert [len(c) for c in chunks(one_tainted)] == [100, 64, 36]
    assert [
        len(c) for c in chunks([*map(entry, range(63)), entry(63, True), *map(entry, range(64, 74))])
    ] == [64, 10]
    assert chunks([]) == []


def test_device_names_are_dns_labels_of_the_pci_address() -> None:
    assert device_name("0000:3B:02.1") == "0000-3b-02-1"


def test_a_device_that_is_not_a_vf_carries_every_attribute_with_placeholders() -> None:
    pf_like = device(
        "0000:5e:00.0", vf_index=None, pf=None, numa_node=None, netdevs=("eno1",), link_type=None
    )
    values = {
        k: next(iter(v.values())) for k, v in attributes(DraDevice("0000-5e-00-0", pf_like, POOL)).items()
    }
    assert (values["vfIndex"], values["numaNode"], values["pfName"], values["pfPciAddress"]) == (
        -1,
        -1,
        "eno1",
        "",
    )
    assert values["linkType"] == "" and values["resourceName"] == "example.com/vfs"
    unhealthy = device_entry(DraDevice("0000-5e-00-0", pf_like, POOL, "no carrier"), DRIVER)
    pool = {"name": NODE, "generation": 1, "resourceSliceCount": 1}
    body = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "s"},
            "spec": {"driver": DRIVER, "nodeName": NODE, "pool": pool, "devices": [unhealthy]}}  # fmt: skip
    assert slice_problem(body) is None  # the API server's rules hold, taint included


def claim(results: list[dict[str, Any]], uid: str = "u1") -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": "ns", "uid": uid},
            "status": {"allocation": {"devices": {"results": results}}}}  # fmt: skip


def test_claims_keep_this_drivers_results_and_name_the_main_request() -> None:
    ref = ClaimRef("ns", "c", "u1")
    ours = {"request": "nics/fast", "driver": DRIVER, "pool": NODE, "device": "d1"}
    theirs = {"request": "gpu", "driver": "gpu.example.com", "pool": "elsewhere", "device": "g0"}
    (found,) = allocated(claim([ours, theirs]), ref, DRIVER, NODE)
    assert (found.device, found.request_name) == ("d1", "nics")
    with pytest.raises(ClaimError, match="not allocated"):
        allocated({"metadata": {"name": "c", "namespace": "ns", "uid": "u1"}}, ref, DRIVER, NODE)
    with pytest.raises(ClaimError, match="has UID u2"):
        allocated(claim([ours], uid="u2"), ref, DRIVER, NODE)
    with pytest.raises(ClaimError, match="unreadable"):
        allocated({"metadata": {"name": "c"}}, ref, DRIVER, NODE)
    with pytest.raises(ClaimError, match="not an object UID"):
        ClaimRef("ns", "c", "a/b").check()


def test_checkpoint_round_trip_and_a_corrupt_one_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "checkpoint.json"
    dev = PreparedDevice(requests=["vf"], pool=NODE, device="d1", cdi_ids=["x/vf=u1-d1"])
    claims = {"u1": PreparedClaim(namespace="ns", name="c", devices=[dev], cdi_spec={"a": 1})}
    assert checkpoint.load(path) == {}
    checkpoint.save(path, claims, durable=True)
    assert checkpoint.load(path) == claims
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    renamed = {"u1": claims["u1"].model_copy(update={"name": "c2"}), "u0": claims["u1"]}
    checkpoint.save(path, renamed, durable=False)  # a claim's kept text goes with the claim
    assert checkpoint.load(path) == renamed
    checkpoint.save(path, claims, durable=False)
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data, indent=2))  # any layout of the same content: as written before
    assert checkpoint.load(path) == claims
    data["claims"]["u1"]["name"] = "other"
    path.write_text(json.dumps(data))
    assert checkpoint.load(path) is None
    assert not path.exists() and len(list(tmp_path.glob("dir/checkpoint.json.corrupt-*"))) == 1


class MemoryApi:
    """ResourceApi's calls over the stand-in's object store, without HTTP."""

    def __init__(self) -> None:
        self.store = ObjectStore()
        self.store.serve("resource.k8s.io/v1", "resourceslices", "ResourceSlice", namespaced=False,
                         validate=slice_problem)  # fmt: skip
        self.conflicts = 0

    def node_uid(self, name: str) -> str:
        return "node-uid"

    def slices(self, driver: str, node: str) -> list[dict[str, Any]]:
        query = f"?fieldSelector=spec.driver%3D{driver},spec.nodeName%3D{node}".replace("%3D", "=")
        return self._ok("GET", query, None)["items"]  # type: ignore[no-any-return]

    def create_slice(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._ok("POST", "", body)

    def update_slice(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("conflict")
        path = f"/apis/resource.k8s.io/v1/resourceslices/{body['metadata']['name']}"
        code, obj = self.store.handle("PUT", path, body) or (0, {})
        return None if code == 404 else obj

    def delete_slice(self, name: str) -> None:
        self.store.handle("DELETE", f"/apis/resource.k8s.io/v1/resourceslices/{name}", None)

    def _ok(self, method: str, suffix: str, body: dict[str, Any] | None) -> dict[str, Any]:
        code, obj = self.store.handle(method, f"/apis/resource.k8s.io/v1/resourceslices{suffix}", body) or (
            0,
            {},
        )
        assert code < 300, obj
        return obj


def test_publisher_survives_conflicts_and_repairs_what_others_changed() -> None:
    api = MemoryApi()
    results: list[bool] = []
    publisher = Publisher(api, DRIVER, NODE, results.append)  # type: ignore[arg-type]
    publisher.start()
    try:
        publisher.publish([{"name": f"d{i}"} for i in range(130)])
        wait_until(lambda: publisher.in_sync, timeout=5, what="published")
        first = api.slices(DRIVER, NODE)
        assert sorted(len(s["spec"]["devices"]) for s in first) == [2, 128]
        api.conflicts = 1
        publisher.publish([{"name": f"d{i}"} for i in range(10)])
        wait_until(lambda: publisher.in_sync, timeout=5, what="published after a conflict")
        (only,) = api.slices(DRIVER, NODE)
        assert only["spec"]["pool"]["generation"] > first[0]["spec"]["pool"]["generation"]
        assert False in results  # the conflict was a failed attempt, then retried
        api.delete_slice(only["metadata"]["name"])  # someone deletes it
        publisher.resync()
        wait_until(lambda: len(api.slices(DRIVER, NODE)) == 1, timeout=5, what="recreated")
    finally:
        publisher.stop()


class Context:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


def test_health_stream_repeats_itself_before_kubelet_would_call_devices_unknown(monkeypatch: Any) -> None:
    monkeypatch.setattr(server, "HEARTBEAT", 0.05)
    monkeypatch.setattr(server, "POLL", 0.01)
    inventory = Inventory()
    inventory.update({"d1": DraDevice("d1", device("0000:3b:02.0"), POOL)}, frozenset(), frozenset())
    servicer = server.HealthServicer(drahealth_v1alpha1_pb2, inventory, NODE, messages=False)
    context = Context()
    stream = servicer.NodeWatchResources(None, context)
    first, second = next(stream), next(stream)  # the second without any change: a heartbeat
    assert (
        [d.device.device_name for d in second.devices]
        == ["d1"]
        == [d.device.device_name for d in first.devices]
    )
    assert second.devices[0].health == drahealth_v1alpha1_pb2.HEALTHY
    context.active = False
    assert list(stream) == []


def test_health_report_covers_prepared_devices_that_left_the_pool() -> None:
    ok = DraDevice("d1", device("0000:3b:02.0"), POOL)
    down = DraDevice("d2", device("0000:3b:02.1"), POOL, "PF ens1f0 has no carrier")
    snap = Snapshot(
        {"d1": ok, "d2": down}, unpooled=frozenset({"d3"}), prepared=frozenset({"d1", "d3", "d4"})
    )
    assert report(snap) == [
        HealthEntry("d1", "Healthy", ""),
        HealthEntry("d2", "Unhealthy", "PF ens1f0 has no carrier"),
        HealthEntry("d3", "Unknown", "no pool of the config takes this device any more"),  # still in sysfs
        HealthEntry("d4", "Unhealthy", "the device is gone from the node"),
    ]


def test_prepare_fails_cleanly_when_the_checkpoint_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    dev = DraDevice("0000-3b-02-0", device("0000:3b:02.0"), POOL)
    uid = str(uuid.uuid4())
    body = claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": dev.name}], uid=uid)
    preparer = Preparer(DRIVER, NODE, tmp_path / "cdi", tmp_path / "not-a-dir" / "checkpoint.json",
                        lambda: {dev.name: dev}, lambda ns, name: body)  # fmt: skip
    out = preparer.prepare([ClaimRef("ns", "c", uid)])
    assert "checkpoint" in out[uid].error
    assert list((tmp_path / "cdi").iterdir()) == [] and preparer.count() == 0


def test_prepare_writes_its_checkpoint_without_flushing_unprepare_flushes_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost entry is harmless, one back from the dead holds a device: only removals are durable."""
    dev = DraDevice("0000-3b-02-0", device("0000:3b:02.0"), POOL)
    uid = str(uuid.uuid4())
    body = claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": dev.name}], uid=uid)
    path = tmp_path / "cp" / "checkpoint.json"
    preparer = Preparer(DRIVER, NODE, tmp_path / "cdi", path, lambda: {dev.name: dev}, lambda ns, name: body)
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert preparer.prepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    assert synced == [] and uid in json.loads(path.read_text())["claims"]
    assert preparer.unprepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    assert synced[-1] == str(path.parent) and len(synced) == 2  # the new file, then the rename
    assert json.loads(path.read_text())["claims"] == {}


def test_prepare_and_unprepare_from_many_threads_keep_one_holder_per_device(tmp_path: Path) -> None:
    devs = {f"d{i}": DraDevice(f"d{i}", device(f"0000:3b:02.{i}"), POOL) for i in range(4)}
    claims = {str(uuid.uuid4()): f"d{i % 4}" for i in range(24)}
    bodies = {uid: claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": d}], uid=uid)
              for uid, d in claims.items()}  # fmt: skip
    preparer = Preparer(DRIVER, NODE, tmp_path / "cdi", tmp_path / "cp" / "checkpoint.json",
                        lambda: devs, lambda ns, name: bodies[name])  # fmt: skip
    won: list[str] = []

    def worker(uid: str) -> None:
        if preparer.prepare([ClaimRef("ns", uid, uid)])[uid].error == "":
            won.append(uid)

    threads = [threading.Thread(target=worker, args=(uid,)) for uid in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(claims[u] for u in won) == sorted(devs)  # each device went to exactly one claim
    assert set(preparer.held()) == set(devs)
    assert dataclasses.asdict(preparer.unprepare([ClaimRef("ns", u, u) for u in won])[won[0]]) == {
        "devices": (), "error": ""
    }  # fmt: skip
    assert (
        preparer.held() == {}
        and json.loads((tmp_path / "cp" / "checkpoint.json").read_text())["claims"] == {}
    )


def vfio_device(group: int) -> DraDevice:
    return DraDevice("0000-3b-02-6", device("0000:3b:02.6", driver="vfio-pci", driver_now="vfio-pci",
                                            netdevs=(), netdevs_now=(), iommu_group=group), POOL)  # fmt: skip


def test_a_lost_cdi_spec_is_written_again_from_the_device_as_it_is_now(tmp_path: Path) -> None:
    """After a reboot a VF's IOMMU group may differ: the spec must name today's /dev/vfio node."""
    now = {"dev": vfio_device(11)}
    uid = str(uuid.uuid4())
    body = claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": "0000-3b-02-6"}], uid=uid)
    cdi_dir, path = tmp_path / "cdi", tmp_path / "cp" / "checkpoint.json"

    def devices() -> dict[str, DraDevice]:
        return {now["dev"].name: now["dev"]}

    preparer = Preparer(DRIVER, NODE, cdi_dir, path, devices, lambda ns, name: body)
    assert preparer.prepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    spec_file = next(cdi_dir.iterdir())
    assert "/dev/vfio/11" in spec_file.read_text()
    spec_file.unlink()  # the reboot: /var/run/cdi is empty, the checkpoint is not
    now["dev"] = vfio_device(12)
    restarted = Preparer(DRIVER, NODE, cdi_dir, path, devices, lambda ns, name: body)
    restarted.load()
    restarted.restore_specs()
    assert "/dev/vfio/12" in spec_file.read_text() and "/dev/vfio/11" not in spec_file.read_text()
    spec_file.unlink()
    now["dev"] = vfio_device(13)
    assert restarted.prepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    assert "/dev/vfio/13" in spec_file.read_text()


def test_a_spec_that_cannot_be_written_again_fails_its_claim_not_the_call(tmp_path: Path) -> None:
    dev = DraDevice("0000-3b-02-0", device("0000:3b:02.0"), POOL)
    uid = str(uuid.uuid4())
    body = claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": dev.name}], uid=uid)
    cdi_dir = tmp_path / "cdi"
    preparer = Preparer(DRIVER, NODE, cdi_dir, tmp_path / "cp" / "checkpoint.json",
                        lambda: {dev.name: dev}, lambda ns, name: body)  # fmt: skip
    assert preparer.prepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    shutil.rmtree(cdi_dir)
    cdi_dir.write_text("")  # the spec cannot be written again: a file where its directory was
    out = preparer.prepare([ClaimRef("ns", "c", uid)])
    assert "cannot write the CDI spec" in out[uid].error and preparer.count() == 1
    gone = Preparer(DRIVER, NODE, tmp_path / "cdi2", tmp_path / "cp" / "checkpoint.json",
                    lambda: {}, lambda ns, name: body)  # fmt: skip
    gone.load()
    gone.restore_specs()  # its device is gone: nothing written, nothing raised
    assert "not on this node any more" in gone.prepare([ClaimRef("ns", "c", uid)])[uid].error


def test_a_checkpoint_lost_beside_its_specs_is_rebuilt_from_them_and_still_holds_the_devices(
    tmp_path: Path,
) -> None:
    """The plugin directory wiped while the driver was down: the specs say which claims run."""
    dev = DraDevice("0000-3b-02-0", device("0000:3b:02.0"), POOL)
    uid, thief = str(uuid.uuid4()), str(uuid.uuid4())
    bodies = {name: claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": dev.name}], uid=u)
              for name, u in (("c", uid), ("thief", thief))}  # fmt: skip
    cdi_dir, path = tmp_path / "cdi", tmp_path / "cp" / "checkpoint.json"
    preparer = Preparer(DRIVER, NODE, cdi_dir, path, lambda: {dev.name: dev}, lambda ns, name: bodies[name])
    assert preparer.prepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    shutil.rmtree(path.parent)
    restarted = Preparer(DRIVER, NODE, cdi_dir, path, lambda: {dev.name: dev}, lambda ns, name: bodies[name])
    restarted.load()
    assert len(list(cdi_dir.iterdir())) == 1 and restarted.held() == {dev.name: uid}
    assert "in use" in restarted.prepare([ClaimRef("ns", "thief", thief)])[thief].error
    assert restarted.unprepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    assert list(cdi_dir.iterdir()) == []


def test_the_devices_in_use_are_read_without_waiting_for_a_checkpoint_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop (health) and /metrics read them while an Unprepare waits on a slow disk."""
    dev = DraDevice("0000-3b-02-0", device("0000:3b:02.0"), POOL)
    uid = str(uuid.uuid4())
    body = claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": dev.name}], uid=uid)
    preparer = Preparer(DRIVER, NODE, tmp_path / "cdi", tmp_path / "cp" / "checkpoint.json",
                        lambda: {dev.name: dev}, lambda ns, name: body)  # fmt: skip
    assert preparer.prepare([ClaimRef("ns", "c", uid)])[uid].error == ""
    assert preparer.prepared_devices() == {dev.name} and preparer.count() == 1
    flushing, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        flushing.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    unprepare = threading.Thread(target=preparer.unprepare, args=([ClaimRef("ns", "c", uid)],))
    unprepare.start()
    try:
        assert flushing.wait(10)
        seen: list[Any] = []
        reader = threading.Thread(target=lambda: seen.append((preparer.prepared_devices(), preparer.count())))
        reader.start()
        reader.join(2)
        assert seen == [({dev.name}, 1)], "the reader waited for the flush"
    finally:
        release.set()
        unprepare.join(10)
    assert preparer.prepared_devices() == frozenset() and preparer.count() == 0
