"""Test support for multus with DRA: a node whose fake SR-IOV NIC (fake sysfs, veth stand-ins for
the VF netdevs, PF-side settings in a JSON file) is published by a DRA driver as a ResourceSlice,
ResourceClaims allocated some of its VFs, pods naming those claims, and the API server stand-in
serving resource.k8s.io/v1 with the checks the real server makes on a claim's `status.devices`.

The driver is deliberately not ours: any driver whose devices carry the standard attribute
`resource.kubernetes.io/pciBusID` must work.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.fake_sysfs import FakeNode, FakeVf
from tests.meta_multus.apiserver import Cluster
from tests.meta_multus.helpers import MultusNode, pod_manifest
from tests.sriov.helpers import seeded_state

API = "resource.k8s.io/v1"
DRIVER = "vfs.example.com"
POOL = "node-a"
REQUEST = "vfs"
PF = "ens1f0"


def device_name(address: str) -> str:
    return address.replace(":", "-").replace(".", "-")


def slice_manifest(
    vfs: list[FakeVf], *, without_pci: tuple[str, ...] = (), generation: int = 1
) -> dict[str, Any]:
    devices = []
    for vf in vfs:
        attributes: dict[str, Any] = {"pfName": {"string": vf.pf_netdev}, "vfIndex": {"int": vf.index}}
        if vf.address not in without_pci:
            attributes["resource.kubernetes.io/pciBusID"] = {"string": vf.address}
        devices.append({"name": device_name(vf.address), "attributes": attributes})
    return {
        "apiVersion": API,
        "kind": "ResourceSlice",
        "metadata": {"name": f"{POOL}-{DRIVER}-{generation}"},
        "spec": {
            "driver": DRIVER,
            "nodeName": POOL,
            "pool": {"name": POOL, "generation": generation, "resourceSliceCount": 1},
            "devices": devices,
        },
    }


def claim_manifest(name: str, vfs: list[FakeVf] | None, namespace: str = "default") -> dict[str, Any]:
    """A claim with one request `vfs`; allocated `vfs` in that order, or not allocated (None)."""
    claim: dict[str, Any] = {
        "apiVersion": API,
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"devices": {"requests": [{"name": REQUEST, "exactly": {"deviceClassName": DRIVER}}]}},
    }
    if vfs is not None:
        results = [{"request": REQUEST, "driver": DRIVER, "pool": POOL, "device": device_name(vf.address)}
                   for vf in vfs]  # fmt: skip
        claim["status"] = {"allocation": {"devices": {"results": results}}}
    return claim


def pod_with_claim(
    name: str, networks: str, claim: str, *, template: bool = False, made: str = ""
) -> dict[str, Any]:
    """A pod whose claim `net` is the ResourceClaim `claim`, or (template) one made from a template
    and named `made` in the pod's status ("" when the controller has not made it yet)."""
    pod = pod_manifest(name, networks=networks, uid=f"uid-{name}")
    entry = (
        {"name": "net", "resourceClaimTemplateName": claim}
        if template
        else {"name": "net", "resourceClaimName": claim}
    )
    pod["spec"]["resourceClaims"] = [entry]
    if template and made:
        pod["status"] = {"resourceClaimStatuses": [{"name": "net", "resourceClaimName": made}]}
    return pod


def sriov_nad(
    node: MultusNode, resource: str, name: str = "fast", subnet: str = "10.60.0.0/24"
) -> dict[str, Any]:
    """An sriov network on `resource`, with PF-side settings a test can see (VLAN, spoof check)."""
    from tests.meta_multus.helpers import nad_manifest

    conf = {"cniVersion": "1.0.0", "name": name, "type": "sriov", "vlan": 100, "spoofchk": "on",
            "ipam": node.ipam(subnet)}  # fmt: skip
    return nad_manifest(name, conf, resource=resource)


def status_problem(claim: dict[str, Any]) -> str | None:
    """The API server's checks of `status.devices` (KEP-4817): allocated devices only, CIDR ips,
    a MAC, a condition with the required fields."""
    allocation = (claim.get("status") or {}).get("allocation") or {}
    allocated = {
        (r["driver"], r["pool"], r["device"]) for r in allocation.get("devices", {}).get("results", [])
    }
    for entry in (claim.get("status") or {}).get("devices") or []:
        if (entry.get("driver"), entry.get("pool"), entry.get("device")) not in allocated:
            return f"status.devices: {entry.get('device')!r} is not allocated"
        data = entry.get("networkData") or {}
        for ip in data.get("ips") or []:
            if "/" not in ip:
                return f"status.devices.networkData.ips: {ip!r} must be a CIDR"
            ipaddress.ip_interface(ip)
        if len(data.get("interfaceName", "")) > 256 or len(data.get("hardwareAddress", "")) > 128:
            return "status.devices.networkData: too long"
        for cond in entry.get("conditions") or []:
            if not all(cond.get(k) for k in ("type", "status", "reason", "lastTransitionTime")):
                return f"status.devices.conditions: incomplete {cond}"
    return None


def serve(cluster: Cluster) -> None:
    cluster.store.serve(API, "resourceclaims", "ResourceClaim", namespaced=True, validate=status_problem)
    cluster.store.serve(API, "resourceslices", "ResourceSlice", namespaced=False)


@dataclass
class ClaimNode:
    """A multus node with the fake NIC: the stand-ins made, the PF-side state seeded."""

    node: MultusNode
    hw: FakeNode

    @property
    def vfs(self) -> list[FakeVf]:
        return [vf for vf in self.hw.vfs if vf.pf_netdev == PF and vf.netdev]

    @property
    def vf_state(self) -> Path:
        return self.node.tmp / "vf-state.json"

    def seed(self) -> dict[str, Any]:
        """Every VF's PF-side settings, away from every default, so a restore to defaults would show."""
        state = {PF: {str(vf.index): seeded_state(vf.index) for vf in self.vfs}}
        self.vf_state.write_text(json.dumps(state))
        return state

    def pf_side(self, vf: FakeVf) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(self.vf_state.read_text())[PF][str(vf.index)]
        return entry

    def mac(self, vf: FakeVf) -> str:
        assert vf.netdev is not None
        return str(self.node.ns.links()[vf.netdev]["address"])
