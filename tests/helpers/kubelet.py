"""A kubelet stand-in: the device manager's `kubelet.sock` (v1beta1 Registration), and stubs to dial a
device plugin's socket, generated from the same protos the device plugin uses.

Shared by the device-plugin tests and `scripts/demo_sriov.sh` (through `scripts/demo_kubelet.py`).
It records every RegisterRequest and can "restart" the way a real kubelet does (remove every socket
in its directory, then re-create its own).
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from pycni.k8s.api import deviceplugin_v1beta1_pb2_grpc as dp_grpc


class _Registration(dp_grpc.RegistrationServicer):
    def __init__(self, sink: list[Any]) -> None:
        self.sink = sink

    def Register(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.sink.append(request)
        return dp.Empty()


class FakeKubelet:
    """The kubelet.sock side; `registrations` lists RegisterRequests across restarts."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.registrations: list[Any] = []
        self._server: Any = None

    @property
    def socket(self) -> Path:
        return self.dir / "kubelet.sock"

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        dp_grpc.add_RegistrationServicer_to_server(  # type: ignore[no-untyped-call]
            _Registration(self.registrations), self._server
        )
        self._server.add_insecure_port(f"unix://{self.socket}")
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        self.socket.unlink(missing_ok=True)

    def restart(self) -> None:
        """As kubelet does on start: wipe the plugin sockets in its directory, then serve again."""
        self.stop()
        for sock in self.dir.glob("*.sock"):
            sock.unlink()
        self.start()

    def registered(self, resource: str) -> list[Any]:
        return [r for r in self.registrations if r.resource_name == resource]


def plugin_channel(socket: Path) -> grpc.Channel:
    return grpc.insecure_channel(f"unix://{socket}")


def plugin_stub(channel: grpc.Channel) -> Any:
    return dp_grpc.DevicePluginStub(channel)  # type: ignore[no-untyped-call]


def plugin(socket: Path) -> Any:
    return dp_grpc.DevicePluginStub(plugin_channel(socket))  # type: ignore[no-untyped-call]
