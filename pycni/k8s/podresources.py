"""The kubelet's PodResources API (v1): which devices the kubelet allocated, per resource.

`pod_devices` answers for one pod (multus): `Get` asks for it (served when the kubelet's
`KubeletPodResourcesGet` gate is on, by default from 1.34); any refusal of it other than
"kubelet unreachable" falls back to `List`, as the reference always does. `node_devices` answers
for every pod of the node (the device plugin, reading back what is in use after a restart). A
channel is opened per lookup and closed after it, never at import: a daemon forks its workers
after importing this module, and gRPC channels do not survive a fork.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pycni.cni.errors import TryAgainLater

#: Per-call deadline (the reference allows 10 s; a kubelet that slow fails the pod anyway).
CALL_TIMEOUT = 5.0
#: The reference's receive limit: a List on a dense node is large.
MAX_MESSAGE = 16 * 1024 * 1024

#: How long to wait for gRPC's threads to end after the lookup (see `_settle`).
SETTLE_TIMEOUT = 2.0

DeviceMap = dict[str, list[str]]


def pod_devices(socket: Path, namespace: str, name: str) -> DeviceMap:
    """Resource name → the pod's device IDs (all containers), sorted; empty when the pod has none.

    Waits for gRPC's threads to end afterwards (`_settle`): a daemon worker must be single-threaded.
    """
    threads = _thread_count()
    try:
        found = _call(socket, lambda grpc, pb, stub: _one_pod(grpc, pb, stub, namespace, name))
    finally:
        _settle(threads)
    return _devices(found)


def node_devices(socket: Path) -> DeviceMap:
    """Resource name → the device IDs the kubelet has given to any pod of the node, sorted."""
    return _devices(_call(socket, lambda grpc, pb, stub: list(_list(pb, stub).pod_resources)))


def _call(socket: Path, ask: Callable[[Any, Any, Any], list[Any]]) -> list[Any]:
    """`ask(grpc, pb, stub)` over a channel of its own; any gRPC failure is `TryAgainLater`."""
    import grpc

    from pycni.k8s.api import podresources_v1_pb2 as pb
    from pycni.k8s.api import podresources_v1_pb2_grpc as pb_grpc

    if not socket.exists():
        raise TryAgainLater(f"the kubelet's pod-resources socket {socket} does not exist")
    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(f"unix://{socket}", options=options) as channel:
        stub = pb_grpc.PodResourcesListerStub(channel)  # type: ignore[no-untyped-call]
        try:
            return ask(grpc, pb, stub)
        except grpc.RpcError as err:
            raise TryAgainLater(
                f"the kubelet's pod-resources API at {socket} failed: {err.code().name}: {err.details()}"
            ) from err


def _one_pod(grpc: Any, pb: Any, stub: Any, namespace: str, name: str) -> list[Any]:
    try:
        request = pb.GetPodResourcesRequest(pod_name=name, pod_namespace=namespace)
        reply = stub.Get(request, timeout=CALL_TIMEOUT)
        return [reply.pod_resources] if reply.HasField("pod_resources") else []
    except grpc.RpcError as err:
        if _unreachable(err):
            raise
        return [p for p in _list(pb, stub).pod_resources if (p.namespace, p.name) == (namespace, name)]


def _list(pb: Any, stub: Any) -> Any:
    return stub.List(pb.ListPodResourcesRequest(), timeout=CALL_TIMEOUT)


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _settle(threads: int, timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait for gRPC's threads to end once its channel is closed.

    A daemon worker switches mount namespaces per request, which the kernel refuses to a
    process with more than one thread; gRPC's threads end a few milliseconds after the last
    channel is gone, so the worker waits for them rather than die on its way home.
    """
    deadline = time.monotonic() + timeout
    collected = False
    while _thread_count() > threads and time.monotonic() < deadline:
        if not collected:
            gc.collect()  # the channel's last references may sit in a cycle
            collected = True
        time.sleep(0.002)


def _unreachable(err: Any) -> bool:
    import grpc

    return err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _devices(pods: list[Any]) -> DeviceMap:
    found: dict[str, set[str]] = {}
    for pod in pods:
        for container in pod.containers:
            for devices in container.devices:
                found.setdefault(devices.resource_name, set()).update(devices.device_ids)
    return {resource: sorted(ids) for resource, ids in found.items()}
