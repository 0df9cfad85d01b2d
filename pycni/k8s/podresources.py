"""The kubelet's PodResources API (v1): which devices the kubelet allocated to a pod, per resource.

`Get` asks for one pod (served when the kubelet's `KubeletPodResourcesGet` gate is on, by default
from 1.34); any refusal of it other than "kubelet unreachable" falls back to `List`, as the
reference always does. A channel is opened per lookup and closed after it, never at import: a
daemon forks its workers after importing this module, and gRPC channels do not survive a fork.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pycni.cni.errors import TryAgainLater

#: Per-call deadline (the reference allows 10 s; a kubelet that slow fails the pod anyway).
CALL_TIMEOUT = 5.0
#: The reference's receive limit: a List on a dense node is large.
MAX_MESSAGE = 16 * 1024 * 1024

DeviceMap = dict[str, list[str]]


def pod_devices(socket: Path, namespace: str, name: str) -> DeviceMap:
    """Resource name → the pod's device IDs (all containers), sorted; empty when the pod has none."""
    import grpc

    from pycni.k8s.api import podresources_v1_pb2 as pb
    from pycni.k8s.api import podresources_v1_pb2_grpc as pb_grpc

    if not socket.exists():
        raise TryAgainLater(f"the kubelet's pod-resources socket {socket} does not exist")
    options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(f"unix://{socket}", options=options) as channel:
        stub = pb_grpc.PodResourcesListerStub(channel)  # type: ignore[no-untyped-call]
        try:
            try:
                reply = stub.Get(
                    pb.GetPodResourcesRequest(pod_name=name, pod_namespace=namespace), timeout=CALL_TIMEOUT
                )
                found = [reply.pod_resources] if reply.HasField("pod_resources") else []
            except grpc.RpcError as err:
                if _unreachable(err):
                    raise
                listed = stub.List(pb.ListPodResourcesRequest(), timeout=CALL_TIMEOUT)
                found = [p for p in listed.pod_resources if (p.namespace, p.name) == (namespace, name)]
        except grpc.RpcError as err:
            raise TryAgainLater(
                f"the kubelet's pod-resources API at {socket} failed: {err.code().name}: {err.details()}"
            ) from err
    return _devices(found)


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
