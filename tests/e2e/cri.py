"""A CRI client as kubelet uses one for pod sandboxes, over containerd's gRPC socket.

The stubs are generated from `cri_runtime_v1.proto` by grpcio-tools (the same protoc the
kubelet stubs under pycni/k8s/api are made with) into a temp dir when the tests start.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

PROTO = Path(__file__).with_name("cri_runtime_v1.proto")
#: kubelet's default parent cgroup for pods (cgroupfs driver); containerd makes it if missing.
CGROUP_PARENT = "/kubepods-pycni-e2e"


def generate_stubs(out: Path) -> tuple[ModuleType, ModuleType]:
    """protoc the CRI proto into `out`; the message and service modules."""
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO.parent}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("cri_runtime_v1_pb2"), importlib.import_module(
            "cri_runtime_v1_pb2_grpc"
        )
    finally:
        sys.path.remove(str(out))


@dataclass(frozen=True)
class Pod:
    """What kubelet knows of a pod when it asks for its sandbox."""

    name: str
    namespace: str = "default"
    uid: str = ""
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def named(cls, name: str, namespace: str = "default", **annotations: str) -> Pod:
        return cls(name, namespace, str(uuid.uuid4()), tuple(annotations.items()))


@dataclass(frozen=True)
class Sandbox:
    id: str
    pod: Pod
    #: Seconds RunPodSandbox took (network setup included).
    started_in: float


class CriError(Exception):
    """A CRI call failed: its gRPC code and the runtime's message (which names the CNI error)."""

    def __init__(self, call: str, err: grpc.RpcError) -> None:
        self.code = err.code()
        self.details = err.details() or ""
        super().__init__(f"{call}: {self.code.name}: {self.details}")


class Cri:
    """RuntimeService calls with kubelet's arguments; every call has a deadline."""

    def __init__(self, socket: Path, stubs: tuple[ModuleType, ModuleType], log_dir: Path) -> None:
        self.pb, service = stubs
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.rt = service.RuntimeServiceStub(self.channel)
        self.log_dir = log_dir

    def close(self) -> None:
        self.channel.close()

    def _call(self, name: str, request: Any, timeout: float = 60.0) -> Any:
        try:
            return getattr(self.rt, name)(request, timeout=timeout)
        except grpc.RpcError as err:
            raise CriError(name, err) from None

    def version(self) -> str:
        return str(self._call("Version", self.pb.VersionRequest(version="v1"), timeout=5).runtime_version)

    def run(self, pod: Pod, attempt: int = 0) -> Sandbox:
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=pod.name, uid=pod.uid, namespace=pod.namespace, attempt=attempt
            ),
            hostname=pod.name,
            log_directory=str(self.log_dir / f"{pod.namespace}_{pod.name}_{pod.uid}"),
            annotations=dict(pod.annotations),
            labels={"io.kubernetes.pod.name": pod.name, "io.kubernetes.pod.namespace": pod.namespace},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=CGROUP_PARENT,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
                ),
            ),
        )
        started = time.monotonic()
        reply = self._call("RunPodSandbox", pb.RunPodSandboxRequest(config=config), timeout=120)
        return Sandbox(reply.pod_sandbox_id, pod, time.monotonic() - started)

    def stop(self, sandbox_id: str) -> None:
        self._call("StopPodSandbox", self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=120)

    def remove(self, sandbox_id: str) -> None:
        self._call(
            "RemovePodSandbox", self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=120
        )

    def status(self, sandbox_id: str) -> tuple[Any, dict[str, Any]]:
        """The sandbox's status and containerd's verbose info (the runtime spec, with the netns path)."""
        reply = self._call(
            "PodSandboxStatus", self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True)
        )
        info = json.loads(reply.info["info"]) if "info" in reply.info else {}
        return reply.status, info

    def netns(self, sandbox_id: str) -> str:
        """The sandbox's network namespace path, where containerd put it."""
        _, info = self.status(sandbox_id)
        spaces = info["runtimeSpec"]["linux"]["namespaces"]
        return str(next(ns["path"] for ns in spaces if ns["type"] == "network"))

    def ips(self, sandbox_id: str) -> list[str]:
        status, _ = self.status(sandbox_id)
        return [ip for ip in [status.network.ip, *(a.ip for a in status.network.additional_ips)] if ip]

    def state(self, sandbox_id: str) -> str:
        status, _ = self.status(sandbox_id)
        return str(self.pb.PodSandboxState.Name(status.state))

    def sandboxes(self) -> list[str]:
        return [sandbox_id for sandbox_id, _, _ in self.listing()]

    def listing(self) -> list[tuple[str, str, str]]:
        """(id, pod name, state) of every sandbox the runtime knows."""
        reply = self._call("ListPodSandbox", self.pb.ListPodSandboxRequest(), timeout=30)
        return [(i.id, i.metadata.name, str(self.pb.PodSandboxState.Name(i.state))) for i in reply.items]

    def sync(self, pod: Pod, attempts: int = 5) -> Sandbox:
        """What kubelet's pod sync does until the pod has a ready sandbox: remove the pod's sandboxes
        that are not ready, then run a new one (the next attempt); a failed run is retried."""
        error: CriError | None = None
        for attempt in range(1, attempts + 1):
            mine = [(i, state) for i, name, state in self.listing() if name == pod.name]
            ready = [i for i, state in mine if state == "SANDBOX_READY"]
            if ready:
                return Sandbox(ready[0], pod, 0.0)
            for sandbox_id, _ in mine:
                self.stop_and_remove(sandbox_id)
            try:
                return self.run(pod, attempt)
            except CriError as err:
                error = err
        raise AssertionError(f"pod {pod.name} never got a sandbox: {error}")

    def stop_and_remove(self, sandbox_id: str) -> float:
        """kubelet's teardown of a pod: StopPodSandbox, then RemovePodSandbox; seconds taken."""
        started = time.monotonic()
        self.stop(sandbox_id)
        self.remove(sandbox_id)
        return time.monotonic() - started
