"""A kubelet stand-in: the device-manager side of the device-plugin and plugin-watcher protocols.

It serves `v1beta1.Registration` on `<dir>/kubelet.sock` and records every RegisterRequest; it
dials plugins' sockets with stubs generated from the same protos the device plugin uses; and it can
"restart" the way a real kubelet does (remove every socket in its directory, then re-create its own).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, TypeVar

import grpc

from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from pycni.k8s.api import deviceplugin_v1beta1_pb2_grpc as dp_grpc
from pycni.k8s.api import pluginregistration_v1_pb2 as reg
from pycni.k8s.api import pluginregistration_v1_pb2_grpc as reg_grpc
from tests.helpers.poll import wait_until

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """A health change must show within a second: the default deadline here is tighter."""
    return wait_until(predicate, timeout, what)


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


def registration_client(socket: Path) -> Any:
    return reg_grpc.RegistrationStub(plugin_channel(socket))  # type: ignore[no-untyped-call]


def watcher_register(socket: Path) -> Any:
    """What the kubelet's plugin watcher does with a new socket: GetInfo, then report success."""
    stub = registration_client(socket)
    info = stub.GetInfo(reg.InfoRequest(), timeout=5)
    stub.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=True), timeout=5)
    return info


class Stream:
    """A ListAndWatch stream read by a thread into a queue, so tests read it with a deadline."""

    def __init__(self, socket: Path) -> None:
        self._channel = plugin_channel(socket)
        self._call = plugin_stub(self._channel).ListAndWatch(dp.Empty())
        self._queue: queue.Queue[Any] = queue.Queue()
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for response in self._call:
                self._queue.put(response)
        except grpc.RpcError:
            pass
        finally:
            self.ended.set()

    def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next device list as {ID: health}."""
        response = self._queue.get(timeout=timeout)
        return {d.ID: d.health for d in response.devices}

    def next_raw(self, timeout: float = 5.0) -> Any:
        return self._queue.get(timeout=timeout)

    def until(self, predicate: Callable[[dict[str, str]], bool], timeout: float = 1.0) -> dict[str, str]:
        """Reads updates until one satisfies `predicate`; fails if none does within `timeout`."""
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching ListAndWatch update within {timeout}s; last: {seen}")
            try:
                seen = self.next(remaining)
            except queue.Empty:
                continue
            if predicate(seen):
                return seen

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


def iter_sockets(directory: Path) -> Iterator[Path]:
    return iter(sorted(p for p in directory.glob("*.sock") if p.name != "kubelet.sock"))
