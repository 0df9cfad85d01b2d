"""What a meta-plugin reads and writes of Dynamic Resource Allocation (`resource.k8s.io/v1`): a
ResourceClaim's allocation, the PCI address of an allocated device in its ResourceSlice, and the
claim's `status.devices[]` entries (KEP-4817 network data), plus the interface every source of
them offers (the API server, a manifest directory).

Only the fields used are modelled. A device's PCI address is the standard attribute
`resource.kubernetes.io/pciBusID`, so any DRA driver that sets it works, not only ours. Status
entries are written as the API's JSON and merged by (driver, pool, device, shareID): an entry
someone else wrote for another device is kept as it was.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from pycni.k8s.objects import ObjectMeta, parse_model

if TYPE_CHECKING:
    from typing import Protocol

GROUP_VERSION = "resource.k8s.io/v1"
#: The standard attribute of a PCI device: its address, as sysfs names it.
PCI_BUS_ID = "resource.kubernetes.io/pciBusID"
#: `domain:bus:device.function`, as sysfs names PCI functions (never a path).
PCI_ADDRESS = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]")
#: The API's limit on `networkData.ips`.
MAX_IPS = 16
READY = "Ready"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class DeviceResult(_Model):
    """`status.allocation.devices.results[]`: one device given to one request of the claim."""

    request: str
    driver: str
    pool: str
    device: str
    share_id: str | None = Field(None, alias="shareID")

    def serves(self, request: str) -> bool:
        """The request's device, also when it came from one of its `firstAvailable` subrequests."""
        return self.request == request or self.request.startswith(f"{request}/")


class _AllocatedDevices(_Model):
    results: list[DeviceResult] = Field(default_factory=list)


class _Allocation(_Model):
    devices: _AllocatedDevices = Field(default_factory=_AllocatedDevices)


class _ClaimStatus(_Model):
    allocation: _Allocation | None = None


class ResourceClaim(_Model):
    metadata: ObjectMeta
    status: _ClaimStatus = Field(default_factory=_ClaimStatus)

    @property
    def allocated(self) -> bool:
        return self.status.allocation is not None

    def results(self, request: str) -> list[DeviceResult]:
        """The devices allocated to `request`, in the allocation's order."""
        allocation = self.status.allocation
        return [r for r in allocation.devices.results if r.serves(request)] if allocation else []


class _SliceDevice(_Model):
    name: str
    attributes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class _Pool(_Model):
    name: str
    generation: int = 0


class _SliceSpec(_Model):
    driver: str
    pool: _Pool
    devices: list[_SliceDevice] = Field(default_factory=list)


class ResourceSlice(_Model):
    spec: _SliceSpec


def parse_claim(obj: Any, where: str) -> ResourceClaim:
    return parse_model(ResourceClaim, obj, where)


def parse_slice(obj: Any, where: str) -> ResourceSlice:
    return parse_model(ResourceSlice, obj, where)


def pci_address(slices: list[ResourceSlice], result: DeviceResult) -> str | None:
    """The device's `pciBusID` in the newest generation of its pool; "" when the device is there
    without one; None when no slice of that generation lists it."""
    pool = [s for s in slices if s.spec.driver == result.driver and s.spec.pool.name == result.pool]
    newest = max((s.spec.pool.generation for s in pool), default=0)
    for piece in pool:
        if piece.spec.pool.generation != newest:
            continue
        for device in piece.spec.devices:
            if device.name == result.device:
                value = device.attributes.get(PCI_BUS_ID, {}).get("string")
                return value if isinstance(value, str) else ""
    return None


def device_status(
    result: DeviceResult, interface: str, ips: list[str], mac: str, message: str
) -> dict[str, Any]:
    """The `status.devices[]` entry of a configured device: its network data and a Ready condition."""
    network: dict[str, Any] = {"interfaceName": interface}
    if ips:
        network["ips"] = ips[:MAX_IPS]
    if mac:
        network["hardwareAddress"] = mac
    entry: dict[str, Any] = {"driver": result.driver, "pool": result.pool, "device": result.device}
    if result.share_id:
        entry["shareID"] = result.share_id
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {"type": READY, "status": "True", "reason": "NetworkConfigured", "message": message,
                 "lastTransitionTime": now}  # fmt: skip
    return {**entry, "conditions": [condition], "networkData": network}


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(entry.get(k) for k in ("driver", "pool", "device", "shareID"))


def merge_devices(current: list[dict[str, Any]], written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`current` with each written entry replacing the one of the same device (others kept, in order)."""
    ours = {_key(e): e for e in written}
    merged = [ours.pop(_key(e), e) for e in current if isinstance(e, dict)]
    return merged + list(ours.values())


def without_devices(current: list[dict[str, Any]], keys: set[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """`current` without the entries of the devices in `keys` (see `entry_key`)."""
    return [e for e in current if isinstance(e, dict) and _key(e) not in keys]


def entry_key(result: DeviceResult) -> tuple[Any, ...]:
    return (result.driver, result.pool, result.device, result.share_id)


if TYPE_CHECKING:

    class ClaimSource(Protocol):
        """Where ResourceClaims and ResourceSlices are read and claims' device status is written."""

        def resource_claim(self, namespace: str, name: str) -> ResourceClaim | None:
            """The claim, or None when it does not exist."""
            ...

        def resource_slices(self, driver: str) -> list[ResourceSlice]:
            """Every slice of `driver` (each pool's newest generation is picked by the caller)."""
            ...

        def write_claim_devices(self, claim: ResourceClaim, entries: list[dict[str, Any]]) -> None:
            """Merge `entries` into the claim's `status.devices` (a claim gone meanwhile is no error)."""
            ...

        def forget_claim_devices(self, namespace: str, name: str, results: list[DeviceResult]) -> None:
            """On DEL: drop the entries of those devices where the record outlives the claim's use."""
            ...
