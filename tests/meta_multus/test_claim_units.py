"""The pure parts of multus's DRA support: claim and slice reading, the merge of status entries,
and which resource names are a claim's request."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pycni.k8s.claims import DeviceResult, merge_devices, parse_claim, parse_slice, pci_address
from pycni.k8s.objects import parse_pod
from pycni.meta_multus.claimed import PodClaims
from tests.meta_multus.helpers import pod_manifest


def a_slice(generation: int, devices: dict[str, str | None], pool: str = "p") -> Any:
    entries = [
        {"name": name, "attributes": {"resource.kubernetes.io/pciBusID": {"string": pci}} if pci else {}}
        for name, pci in devices.items()
    ]
    spec = {"driver": "d.example", "pool": {"name": pool, "generation": generation}, "devices": entries}
    return parse_slice({"metadata": {"name": f"s{generation}"}, "spec": spec}, "test")


def result(device: str, request: str = "vfs") -> DeviceResult:
    return DeviceResult(request=request, driver="d.example", pool="p", device=device)


def test_the_pci_address_comes_from_the_pools_newest_generation() -> None:
    old = a_slice(1, {"a": "0000:3b:02.0", "b": "0000:3b:02.1"})
    new = a_slice(2, {"a": "0000:3b:02.7", "c": None})
    other_pool = a_slice(9, {"a": "0000:99:00.0"}, pool="q")
    slices = [old, new, other_pool]
    assert pci_address(slices, result("a")) == "0000:3b:02.7"
    assert pci_address(slices, result("b")) is None, "only in a stale generation"
    assert pci_address(slices, result("c")) == "", "listed without the attribute"


def test_a_requests_devices_include_its_subrequests_in_allocation_order() -> None:
    results = [
        {"request": "vfs/fast", "driver": "d", "pool": "p", "device": "z"},
        {"request": "other", "driver": "d", "pool": "p", "device": "y"},
        {"request": "vfs", "driver": "d", "pool": "p", "device": "a"},
        {"request": "vfsx", "driver": "d", "pool": "p", "device": "b"},
    ]
    claim = parse_claim(
        {"metadata": {"name": "c"}, "status": {"allocation": {"devices": {"results": results}}}}, "t"
    )
    assert [r.device for r in claim.results("vfs")] == ["z", "a"]
    assert not parse_claim({"metadata": {"name": "c"}}, "t").allocated


def test_merge_keeps_others_entries_and_replaces_the_same_devices() -> None:
    theirs = {"driver": "d", "pool": "p", "device": "x", "data": {"k": 1}}
    stale = {"driver": "d", "pool": "p", "device": "a", "networkData": {"interfaceName": "net9"}}
    shared = {"driver": "d", "pool": "p", "device": "a", "shareID": "s1"}
    new = {"driver": "d", "pool": "p", "device": "a", "networkData": {"interfaceName": "net1"}}
    added = {"driver": "d", "pool": "p", "device": "b"}
    assert merge_devices([theirs, stale, shared], [new, added]) == [theirs, new, shared, added]


@pytest.mark.parametrize(
    ("resource", "claimed"),
    [("net/vfs", True), ("net/", False), ("other/vfs", False), ("intel.com/sriov", False), ("net", False)],
)
def test_only_the_pods_own_claims_are_claims(resource: str, claimed: bool) -> None:
    manifest = pod_manifest("web")
    manifest["spec"]["resourceClaims"] = [{"name": "net", "resourceClaimName": "vfs"}]

    def no_source() -> None:
        raise AssertionError("deciding must not read claims")

    assert PodClaims(parse_pod(manifest, "t"), no_source).backs(resource) is claimed


def test_claim_status_files_merge_under_one_lock_and_leave_nothing_when_emptied(tmp_path: Path) -> None:
    """Pods sharing a claim write one file at once; the last DEL takes the file, the namespace's
    directory and its lock file with it."""
    from pycni.k8s import claimfiles

    devices = [f"vf{i}" for i in range(16)]

    def entry(device: str) -> dict[str, Any]:
        return {"driver": "d", "pool": "p", "device": device, "networkData": {"interfaceName": "net1"}}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: claimfiles.merge(tmp_path, "default", "shared", [entry(d)]), devices))
    file = claimfiles.path(tmp_path, "default", "shared")
    assert sorted(e["device"] for e in claimfiles.read(file)) == sorted(devices)  # no write lost

    def forget(device: str) -> None:
        claimfiles.remove(tmp_path, "default", "shared", {("d", "p", device, None)})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(forget, devices))
    assert list(tmp_path.iterdir()) == []
