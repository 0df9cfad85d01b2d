"""Every `resource.k8s.io/v1` call multus makes, in one module (with pycni/k8s/apiserver.py, the
source of its RBAC: resourceclaims get, resourceslices list, resourceclaims/status update;
deploy/kubernetes/rbac.yaml, checked against the calls by tests/meta_multus).

A claim's device status is written as the node writes network-status: GET the claim, merge our
entries into `status.devices` (others' entries kept), PUT the status subresource at that
resourceVersion, and again on 409. No patch: a JSON merge patch would replace the whole list,
and the API has no strategic merge key for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import TryAgainLater
from pycni.k8s.apiserver import STATUS_ATTEMPTS, ApiServer, get_or_none, replace_read
from pycni.k8s.claims import ResourceClaim, ResourceSlice, merge_devices, parse_claim, parse_slice
from pycni.k8s.resourceapi import kinds

if TYPE_CHECKING:
    from lightkube import Client

    from pycni.k8s.claims import DeviceResult

log = logging.getLogger(__name__)


class ClaimApi:
    """A `ClaimSource` over the API server."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api

    def resource_claim(self, namespace: str, name: str) -> ResourceClaim | None:
        obj = self.api.call(lambda c: get_or_none(c, kinds().claim, name, namespace))
        return None if obj is None else parse_claim(dict(obj), f"ResourceClaim {namespace}/{name}")

    def resource_slices(self, driver: str) -> list[ResourceSlice]:
        """The driver's slices (a field selector, paged by lightkube)."""
        found = self.api.call(
            lambda c: [dict(o) for o in c.list(kinds().slice, fields={"spec.driver": driver})]
        )
        return [parse_slice(obj, f"ResourceSlice {obj['metadata']['name']}") for obj in found]

    def write_claim_devices(self, claim: ResourceClaim, entries: list[dict[str, Any]]) -> None:
        for _ in range(STATUS_ATTEMPTS):
            if self.api.call(lambda c: _put_devices(c, claim, entries)):
                return
        raise TryAgainLater(
            f"cannot write the device status of ResourceClaim {claim.metadata.namespace}/"
            f"{claim.metadata.name}: it kept changing ({STATUS_ATTEMPTS} conflicts)"
        )

    def forget_claim_devices(self, namespace: str, name: str, results: list[DeviceResult]) -> None:
        """Nothing: DEL never needs the API server, and the entries go when the claim is deallocated."""


def _put_devices(client: Client, claim: ResourceClaim, entries: list[dict[str, Any]]) -> bool:
    """One GET + PUT of `resourceclaims/<name>/status`; False on a 409 (try again), True when
    written or the claim is gone (or is another claim of the same name)."""

    meta = claim.metadata
    current = get_or_none(client, kinds().claim, meta.name, meta.namespace)
    if current is None or (meta.uid and current["metadata"].get("uid") != meta.uid):
        log.warning("ResourceClaim %s/%s is gone: its device status not written", meta.namespace, meta.name)
        return True
    body = dict(current)
    status = dict(body.get("status") or {})
    status["devices"] = merge_devices(list(status.get("devices") or []), entries)
    body["status"] = status
    return replace_read(client, kinds().claim.Status(body))
