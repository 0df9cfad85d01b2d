"""The ResourceClaims kubelet asks the driver to prepare: the reference kubelet sends, and what the
API server says was allocated to this driver on this node.

Only the fields preparation needs are modelled (pydantic, unknown fields ignored); anything that
makes the claim unusable is a `ClaimError` whose message kubelet shows on the pod: a reference that
is not one, a claim that is gone or is another object now (UID), one not allocated, or a device of
this driver in another pool than this node's.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pycni.k8s.objects import is_dns_subdomain, is_namespace

log = logging.getLogger(__name__)

#: Object UIDs are UUIDs; anything else could not have come from the API server (and a UID
#: becomes part of a CDI spec's file name).
UID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,62}")


class ClaimError(Exception):
    """This claim cannot be prepared; the message says why."""


@dataclass(frozen=True)
class ClaimRef:
    """A claim as kubelet names it in NodePrepareResources / NodeUnprepareResources."""

    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} ({self.uid})"

    def check(self) -> None:
        if not UID.fullmatch(self.uid):
            raise ClaimError(f"claim UID {self.uid!r} is not an object UID")
        if not is_namespace(self.namespace) or not is_dns_subdomain(self.name):
            raise ClaimError(f"claim {self.namespace!r}/{self.name!r} is not a namespace and object name")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class AllocatedDevice(_Model):
    """One `status.allocation.devices.results[]` entry."""

    request: str
    driver: str
    pool: str
    device: str
    admin_access: bool = Field(False, alias="adminAccess")

    @property
    def request_name(self) -> str:
        """The request a container names: a subrequest `main/sub` counts as `main`."""
        return self.request.split("/", 1)[0]


class _Opaque(_Model):
    driver: str


class _DeviceConfig(_Model):
    opaque: _Opaque | None = None


class _Devices(_Model):
    results: list[AllocatedDevice] = Field(default_factory=list)
    config: list[_DeviceConfig] = Field(default_factory=list)


class _Allocation(_Model):
    devices: _Devices = Field(default_factory=_Devices)


class _Status(_Model):
    allocation: _Allocation | None = None


class _Meta(_Model):
    name: str
    namespace: str
    uid: str


class _Claim(_Model):
    metadata: _Meta
    status: _Status = Field(default_factory=_Status)


def allocated(obj: dict[str, Any] | None, ref: ClaimRef, driver: str, pool: str) -> list[AllocatedDevice]:
    """This driver's devices in the claim `obj` (the server's JSON for `ref`), or why there are none."""
    if obj is None:
        raise ClaimError(f"ResourceClaim {ref.namespace}/{ref.name} not found")
    try:
        claim = _Claim.model_validate(obj)
    except ValidationError as err:
        raise ClaimError(
            f"ResourceClaim {ref.namespace}/{ref.name}: unreadable: {err.errors()[0]['msg']}"
        ) from None
    if claim.metadata.uid != ref.uid:
        raise ClaimError(
            f"ResourceClaim {ref.namespace}/{ref.name} has UID {claim.metadata.uid}, not {ref.uid}: "
            "it was deleted and made again"
        )
    if claim.status.allocation is None:
        raise ClaimError(f"ResourceClaim {ref.namespace}/{ref.name} is not allocated")
    ours = [r for r in claim.status.allocation.devices.results if r.driver == driver]
    for result in ours:
        if result.pool != pool:
            raise ClaimError(
                f"device {result.device} of ResourceClaim {ref.namespace}/{ref.name} is in pool "
                f"{result.pool}, not in this node's pool {pool}"
            )
    if any(
        c.opaque is not None and c.opaque.driver == driver for c in claim.status.allocation.devices.config
    ):
        log.warning("opaque parameters for this driver are not used", extra={"claim": str(ref)})
    return ours
