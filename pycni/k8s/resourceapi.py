"""Every `resource.k8s.io/v1` call the DRA driver makes, in one module: its RBAC is derived from it
(resourceslices list/create/update/delete, resourceclaims get, nodes get; deploy/kubernetes/
rbac-dra-driver.yaml, checked against the calls by tests/dra).

Objects travel as the server's JSON (dicts), through lightkube generic resources and the
`ApiServer` client (kubeconfig or in-cluster account, cached connection, timeouts, a 401 retried
with fresh credentials); a failure is that module's `TryAgainLater` (the server is down, busy or
answers 5xx) or `InternalError`, carrying the server's message.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from pycni.cni.errors import TryAgainLater
from pycni.k8s.apiserver import ApiServer, get_or_none

if TYPE_CHECKING:
    from lightkube import Client

GROUP = "resource.k8s.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"


class Conflict(TryAgainLater):
    """The object changed since it was read (HTTP 409): read it again, then write."""


class _Kinds(NamedTuple):
    slice: Any
    claim: Any
    node: Any


@cache
def kinds() -> _Kinds:
    """The generic resource classes, made on first use (no discovery request: the paths are fixed)."""
    from lightkube.generic_resource import create_global_resource, create_namespaced_resource

    return _Kinds(
        create_global_resource(GROUP, VERSION, "ResourceSlice", "resourceslices"),
        create_namespaced_resource(GROUP, VERSION, "ResourceClaim", "resourceclaims"),
        create_global_resource("", "v1", "Node", "nodes"),
    )


class ResourceApi:
    """ResourceSlices of one driver and node, the ResourceClaims it prepares, and its Node."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api

    def node_uid(self, name: str) -> str | None:
        """The Node's UID (ResourceSlices are owned by it); None when there is no such Node."""
        obj = self.api.call(lambda c: get_or_none(c, kinds().node, name))
        return None if obj is None else str(obj["metadata"]["uid"])

    def claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ResourceClaim as the server has it now, or None when it does not exist."""
        obj = self.api.call(lambda c: get_or_none(c, kinds().claim, name, namespace))
        return None if obj is None else _plain(obj)

    def slices(self, driver: str, node: str) -> list[dict[str, Any]]:
        """Every ResourceSlice of `driver` on `node`, whoever wrote it (field selectors, paged)."""
        fields: dict[str, Any] = {"spec.driver": driver, "spec.nodeName": node}
        return self.api.call(lambda c: [_plain(obj) for obj in c.list(kinds().slice, fields=fields)])

    def create_slice(self, body: dict[str, Any]) -> dict[str, Any]:
        """Creates a slice (named by the server from `metadata.generateName`); returns it as stored."""
        return self.api.call(lambda c: _plain(c.create(kinds().slice(body))))

    def update_slice(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Replaces a slice at `metadata.resourceVersion`; None when it is gone, `Conflict` on 409."""
        return self.api.call(lambda c: _replace(c, body))

    def delete_slice(self, name: str) -> None:
        """Deletes a slice; one already gone is no error."""
        self.api.call(lambda c: _delete(c, name))


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj)


def _replace(client: Client, body: dict[str, Any]) -> dict[str, Any] | None:
    from lightkube import ApiError

    try:
        return _plain(client.replace(kinds().slice(body)))
    except ApiError as err:
        if err.status.code == 404:
            return None
        if err.status.code == 409:
            raise Conflict(err.status.message or "conflict") from err
        raise


def _delete(client: Client, name: str) -> None:
    from lightkube import ApiError

    try:
        client.delete(kinds().slice, name)
    except ApiError as err:
        if err.status.code != 404:
            raise
