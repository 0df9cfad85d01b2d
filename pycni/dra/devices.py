"""A VF (or any device of a config.json pool) as the DRA driver publishes it: a DNS-label name from
its PCI address, and the attributes CEL selectors read.

Every device carries every attribute, so a selector never fails on a missing key: a fact that does
not apply is `-1` (`numaNode` without NUMA, `vfIndex` of a device that is not a VF) or `""` (a
`pfName` or `linkType` nobody reports). Unqualified names are in the driver's domain
(`device.attributes["sriov.pycni.io"].pfName`); `resource.kubernetes.io/pciBusID` is the standard
one, and the two `k8s.cni.cncf.io/` ones are what multus reads to find a claimed device's PCI
address for its NetworkAttachmentDefinition (`k8s.v1.cni.cncf.io/resourceName`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycni.hw.discovery import Device
from pycni.k8s.pools.membership import Pool

PCI_BUS_ID = "resource.kubernetes.io/pciBusID"
MULTUS_RESOURCE_NAME = "k8s.cni.cncf.io/resourceName"
MULTUS_DEVICE_ID = "k8s.cni.cncf.io/deviceID"
#: The API's limit on a string attribute's value.
MAX_STRING = 64


@dataclass(frozen=True)
class DraDevice:
    """One published device: what discovery saw, the pool (config.json resource) it joined, and why
    it is unhealthy now (None: healthy)."""

    name: str
    device: Device
    pool: Pool
    unhealthy: str | None = None

    @property
    def healthy(self) -> bool:
        return self.unhealthy is None

    @property
    def address(self) -> str:
        return self.device.address


def device_name(address: str) -> str:
    """`0000:3b:02.1` -> `0000-3b-02-1`: a DNS label, stable for as long as the PCI address is."""
    return address.lower().replace(":", "-").replace(".", "-")


def attributes(dev: DraDevice) -> dict[str, dict[str, Any]]:
    """The attributes in the API's JSON shape (`{"string": ...}`, `{"int": ...}`, `{"bool": ...}`)."""
    d = dev.device
    values: dict[str, str | int | bool] = {
        PCI_BUS_ID: d.address,
        MULTUS_DEVICE_ID: d.address,
        MULTUS_RESOURCE_NAME: dev.pool.resource,
        "resourceName": dev.pool.resource,
        "pfName": d.pf_name or "",
        "pfPciAddress": d.pf_address or "",
        "vfIndex": -1 if d.vf_index is None else d.vf_index,
        "numaNode": -1 if d.numa_node is None else d.numa_node,
        "vendor": d.vendor,
        "deviceID": d.device,
        "driver": d.driver or "",
        "linkType": d.link_type or "",
        "healthy": dev.healthy,
    }
    return {name: _value(value) for name, value in values.items()}


def _value(value: str | int | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    return {"string": value}


def config_problems(pools: list[Pool]) -> list[str]:
    """Why a config cannot be published: a resource name the API would refuse as an attribute."""
    return [
        f"resource {pool.resource}: longer than {MAX_STRING} characters, the limit of a DRA string attribute"
        for pool in pools
        if len(pool.resource) > MAX_STRING
    ]
