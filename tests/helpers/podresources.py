"""A kubelet pod-resources stand-in: the real v1 proto over a unix socket, List always, Get on request.

Shared by the multus tests (a pod's devices) and the device-plugin tests (what pods hold when the
plugin starts).
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from pycni.k8s.api import podresources_v1_pb2 as pb
from pycni.k8s.api import podresources_v1_pb2_grpc as pb_grpc

#: (namespace, pod) → container → resource → device IDs
Allocations = dict[tuple[str, str], dict[str, dict[str, list[str]]]]


class _Lister(pb_grpc.PodResourcesListerServicer):
    def __init__(self, owner: FakePodResources) -> None:
        self.owner = owner

    def _pod(self, key: tuple[str, str]) -> Any:
        containers = [
            pb.ContainerResources(
                name=container,
                devices=[
                    pb.ContainerDevices(resource_name=r, device_ids=ids) for r, ids in resources.items()
                ],
            )
            for container, resources in self.owner.allocations.get(key, {}).items()
        ]
        return pb.PodResources(namespace=key[0], name=key[1], containers=containers)

    def List(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.owner.calls.append("List")
        return pb.ListPodResourcesResponse(pod_resources=[self._pod(key) for key in self.owner.allocations])

    def Get(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.owner.calls.append("Get")
        if not self.owner.serve_get:
            context.abort(grpc.StatusCode.UNKNOWN, "PodResources API Get method disabled")
        key = (request.pod_namespace, request.pod_name)
        if key not in self.owner.allocations:
            context.abort(grpc.StatusCode.NOT_FOUND, f"pod {key} not found")
        return pb.GetPodResourcesResponse(pod_resources=self._pod(key))


class FakePodResources:
    def __init__(self, socket: Path, *, serve_get: bool = True) -> None:
        self.socket = socket
        self.serve_get = serve_get
        self.allocations: Allocations = {}
        self.calls: list[str] = []
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        pb_grpc.add_PodResourcesListerServicer_to_server(_Lister(self), self._server)  # type: ignore[no-untyped-call]
        socket.unlink(missing_ok=True)
        self._server.add_insecure_port(f"unix://{socket}")
        self._server.start()

    def allocate(
        self, namespace: str, pod: str, resource: str, ids: list[str], container: str = "app"
    ) -> None:
        self.allocations.setdefault((namespace, pod), {}).setdefault(container, {})[resource] = ids

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)
        self.socket.unlink(missing_ok=True)
