"""Every core and NetworkAttachmentDefinition call the node makes to the Kubernetes API server, in
one module (least-privilege RBAC is derived from it: get pods, update pods/status, get
network-attachment-definitions, create events; the `resource.k8s.io` calls are in claimapi.py).

Built on lightkube (sync, generic resources without discovery). Pods are read and written as
dict-backed generic resources, so a PUT of `pods/<name>/status` sends back every field the
server returned, including ones no client model knows. Every call has a timeout.

Credentials: a kubeconfig or the in-cluster service account (`kubeconfig: "incluster"`), read by
`pycni.k8s.credentials`; an exec plugin's credential is used until it expires or the server
answers 401.

Clients are cached per process, keyed by the kubeconfig's path and contents and by the network
namespace of the caller (a connection belongs to the namespace it was opened in), so a daemon
worker reuses its connection across requests; nothing is created at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pycni.cni.errors import CNIError, InternalError, InvalidConfig, TryAgainLater
from pycni.k8s.credentials import from_file, in_cluster, with_exec_credential
from pycni.k8s.objects import (
    NAD_GROUP,
    NAD_KIND,
    NAD_PLURAL,
    NAD_VERSION,
    NETWORK_STATUS_ANNOTATION,
    NetworkAttachmentDefinition,
    Pod,
    parse_nad,
    parse_pod,
)

if TYPE_CHECKING:
    from lightkube import Client
    from lightkube.config.kubeconfig import SingleConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

IN_CLUSTER = "incluster"
#: Connect, read and write limit of one request.
CALL_TIMEOUT = 5.0
#: ADD waits this long for a pod the server does not show yet (the reference's 2.5 s), polling.
POD_WAIT = 2.5
POD_POLL = 0.25
#: Attempts at the GET + PUT of network-status when the pod changes in between (409).
STATUS_ATTEMPTS = 5
#: Clients kept per process (a daemon worker serves many callers).
CACHE_SIZE = 8
FIELD_MANAGER = "pycni-multus"
EVENT_COMPONENT = "multus"


class Resources(NamedTuple):
    pod: Any
    pod_status: Any
    nad: Any
    event: Any


@cache
def resources() -> Resources:
    """The generic resource classes, made on first use (no discovery request: the paths are fixed)."""
    from lightkube.generic_resource import create_namespaced_resource

    pod = create_namespaced_resource("", "v1", "Pod", "pods")
    nad = create_namespaced_resource(NAD_GROUP, NAD_VERSION, NAD_KIND, NAD_PLURAL)
    event = create_namespaced_resource("", "v1", "Event", "events")
    return Resources(pod, pod.Status, nad, event)


class _Cached(NamedTuple):
    client: Client
    #: When the exec credential in use expires (monotonic seconds); None: never.
    expires: float | None


_CLIENTS: OrderedDict[tuple[str, str, tuple[int, int], str], _Cached] = OrderedDict()
#: The cache is shared by threads (the DRA driver calls from its publisher and its gRPC threads).
_CLIENTS_LOCK = threading.RLock()


class ApiServer:
    """A `PodSource` backed by the API server named by a kubeconfig (or the in-cluster account).

    `field_manager` names the writer in the objects' managed fields (another node service, such
    as the DRA driver, gives its own); `call` runs any other request with the same cached client.
    """

    status_kept_apart = False

    def __init__(self, kubeconfig: str, env: Mapping[str, str], field_manager: str = FIELD_MANAGER) -> None:
        self.kubeconfig = kubeconfig
        self.env = env
        self.field_manager = field_manager

    # -- the PodSource interface ---------------------------------------------------------------
    def pod(self, namespace: str, name: str, *, wait: bool = False) -> Pod | None:
        """The pod; with `wait`, NotFound and transient failures are retried for `POD_WAIT` s."""
        deadline = time.monotonic() + (POD_WAIT if wait else 0.0)
        while True:
            try:
                obj = self._call(lambda c: get_or_none(c, resources().pod, name, namespace))
                if obj is not None or time.monotonic() >= deadline:
                    return None if obj is None else parse_pod(dict(obj), f"pod {namespace}/{name}")
            except TryAgainLater:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(POD_POLL)

    def nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
        obj = self._call(lambda c: get_or_none(c, resources().nad, name, namespace))
        return (
            None if obj is None else parse_nad(dict(obj), f"NetworkAttachmentDefinition {namespace}/{name}")
        )

    def write_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """GET the pod, set the annotation, PUT `pods/<name>/status`; again on 409 (conflict)."""
        value = json.dumps(status)
        for _ in range(STATUS_ATTEMPTS):
            if self._call(lambda c: _put_status(c, pod, value)):
                return
        raise TryAgainLater(
            f"cannot write network-status of pod {pod.namespace}/{pod.name}: "
            f"it kept changing ({STATUS_ATTEMPTS} conflicts)"
        )

    def forget_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """Nothing: the annotation goes with the pod (the reference leaves it too)."""

    def event(self, pod: Pod, reason: str, message: str, *, warning: bool = False) -> None:
        try:
            self._call(lambda c: c.create(resources().event(_event(pod, reason, message, warning))))
        except Exception as err:
            log.warning("cannot post event %s for pod %s/%s: %s", reason, pod.namespace, pod.name, err)

    # -- plumbing ------------------------------------------------------------------------------
    def call(self, func: Callable[[Client], T]) -> T:
        """One request through the cached client, with this module's retry and error rules."""
        return self._call(func)

    def _call(self, func: Callable[[Client], T]) -> T:
        """Run one request with a cached client; a 401 drops the client and tries once more."""
        from lightkube import ApiError

        for attempt in (1, 2):
            client = self._client()
            try:
                return func(client)
            except ApiError as err:
                if err.status.code == 401 and attempt == 1:
                    _drop(client)
                    continue
                raise _api_error(err, self._server(client)) from err
            except Exception as err:
                raise _transport_error(err, self._server(client)) from err
        raise AssertionError("unreachable")

    @staticmethod
    def _server(client: Client) -> str:
        return str(client.config.cluster.server)

    def _client(self) -> Client:
        with _CLIENTS_LOCK:
            return self._cached_client()

    def _cached_client(self) -> Client:
        raw = self._kubeconfig_bytes()
        key = (self.kubeconfig, hashlib.sha256(raw).hexdigest(), _netns_identity(), self.field_manager)
        cached = _CLIENTS.get(key)
        if cached is not None and (cached.expires is None or cached.expires > time.monotonic()):
            _CLIENTS.move_to_end(key)
            return cached.client
        if cached is not None:
            _drop(cached.client)
        config, expires = self._config(raw)
        from lightkube import Client
        from lightkube.core.exceptions import ConfigError

        try:
            client = Client(config, timeout=_timeout(), trust_env=False, field_manager=self.field_manager)
        except (ConfigError, OSError, ValueError) as err:
            raise InvalidConfig(f"kubeconfig {self.kubeconfig}: {err}") from err
        _CLIENTS[key] = _Cached(client, expires)
        while len(_CLIENTS) > CACHE_SIZE:
            _, old = _CLIENTS.popitem(last=False)
            old.client.close()
        return client

    def _kubeconfig_bytes(self) -> bytes:
        if self.kubeconfig == IN_CLUSTER:
            host, port = (
                self.env.get("KUBERNETES_SERVICE_HOST", ""),
                self.env.get("KUBERNETES_SERVICE_PORT", ""),
            )
            return f"{IN_CLUSTER} {host} {port}".encode()
        try:
            return Path(self.kubeconfig).read_bytes()
        except OSError as err:
            raise InvalidConfig(f"cannot read kubeconfig {self.kubeconfig}: {err.strerror}") from err

    def _config(self, raw: bytes) -> tuple[SingleConfig, float | None]:
        from lightkube.core.exceptions import ConfigError

        try:
            config = (
                in_cluster(self.env) if self.kubeconfig == IN_CLUSTER else from_file(self.kubeconfig, raw)
            )
            if config.user is not None and config.user.exec is not None:
                return with_exec_credential(config, self.env)
        except (ConfigError, KeyError, TypeError, ValueError) as err:
            raise InvalidConfig(f"kubeconfig {self.kubeconfig}: {type(err).__name__}: {err}") from err
        return config, None


def _timeout() -> Any:
    import httpx2

    return httpx2.Timeout(CALL_TIMEOUT)


def _netns_identity() -> tuple[int, int]:
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def _drop(client: Client) -> None:
    with _CLIENTS_LOCK:
        for key, cached in list(_CLIENTS.items()):
            if cached.client is client:
                del _CLIENTS[key]
    client.close()


def get_or_none(client: Client, res: Any, name: str, namespace: str | None = None) -> Any:
    """The object, or None when the server answers 404 (a global resource: no namespace)."""
    from lightkube import ApiError

    try:
        return client.get(res, name, namespace=namespace)
    except ApiError as err:
        if err.status.code == 404:
            return None
        raise


def _put_status(client: Client, pod: Pod, value: str) -> bool:
    """One GET + PUT; False on a 409 (try again), True when written or the pod is gone."""
    res = resources()
    current = get_or_none(client, res.pod, pod.name, pod.namespace)
    if current is None or (pod.uid and current["metadata"].get("uid") != pod.uid):
        log.warning("pod %s/%s is gone: network-status not written", pod.namespace, pod.name)
        return True
    metadata = current["metadata"]
    metadata["annotations"] = {**(metadata.get("annotations") or {}), NETWORK_STATUS_ANNOTATION: value}
    return replace_read(client, res.pod_status(dict(current)))


def replace_read(client: Client, obj: Any) -> bool:
    """PUT an object as read a moment ago; False on a 409 (changed since: read it again), True
    when written or when it is gone meanwhile (404)."""
    from lightkube import ApiError

    try:
        client.replace(obj)
    except ApiError as err:
        if err.status.code == 409:
            return False
        if err.status.code == 404:
            return True
        raise
    return True


def _event(pod: Pod, reason: str, message: str, warning: bool) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod.name}.{time.time_ns():x}", "namespace": pod.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def _api_error(err: Any, server: str) -> CNIError:
    code = err.status.code
    text = (
        f"API server {server} answered {code} {err.status.reason or ''}: {err.status.message or ''}".rstrip(
            ": "
        )
    )
    return TryAgainLater(text) if code in (429, 500, 502, 503, 504) else InternalError(text)


def _transport_error(err: Exception, server: str) -> CNIError:
    if isinstance(err, CNIError):
        return err
    import httpx2

    if isinstance(err, httpx2.TransportError):
        return TryAgainLater(f"cannot reach the API server {server}: {type(err).__name__}: {err}")
    return InternalError(f"request to the API server {server} failed: {type(err).__name__}: {err}")
