"""A kubelet stand-in for DRA drivers: the plugin watcher and the DRA manager's client side, over the
real protos (pluginregistration v1, DRAPlugin v1/v1beta1, DRAResourceHealth v1alpha1/v1) and unix
sockets, as kubelet does it:

- the watcher finds sockets in its registry directory (names starting with `.` are ignored), calls
  GetInfo, checks the type and picks the first service it knows from the supported versions, then
  answers NotifyRegistrationStatus; a socket that disappears is a deregistration;
- once registered it opens the health stream on the plugin's endpoint and keeps what it reads;
- `restart` is kubelet restarting: streams and registrations dropped, optionally the registry
  directory wiped and made again, then a fresh scan.
"""

from __future__ import annotations

import queue
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from pycni.k8s.api import (
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    drahealth_v1_pb2,
    drahealth_v1_pb2_grpc,
    drahealth_v1alpha1_pb2,
    drahealth_v1alpha1_pb2_grpc,
)
from pycni.k8s.api import pluginregistration_v1_pb2 as reg
from pycni.k8s.api import pluginregistration_v1_pb2_grpc as reg_grpc

DRA_SERVICES: dict[str, tuple[ModuleType, ModuleType]] = {
    "v1.DRAPlugin": (dra_v1_pb2, dra_v1_pb2_grpc),
    "v1beta1.DRAPlugin": (dra_v1beta1_pb2, dra_v1beta1_pb2_grpc),
}
HEALTH_SERVICES: dict[str, tuple[ModuleType, ModuleType]] = {
    "v1alpha1.DRAResourceHealth": (drahealth_v1alpha1_pb2, drahealth_v1alpha1_pb2_grpc),
    "v1.DRAResourceHealth": (drahealth_v1_pb2, drahealth_v1_pb2_grpc),
}
#: A claim as kubelet names it: (namespace, name, uid).
Claim = tuple[str, str, str]
#: How often the watcher looks at its directory (kubelet uses inotify; the effect is the same).
SCAN = 0.02


def channel(socket: Path | str) -> grpc.Channel:
    """A dial of its own: no connection shared with other channels (grpc-python pools them per
    target by default, and one to a socket since replaced would fail the first call)."""
    return grpc.insecure_channel(f"unix://{socket}", options=[("grpc.use_local_subchannel_pool", 1)])


@dataclass
class Registration:
    socket: Path
    inode: tuple[int, int]
    info: Any
    service: str
    health: HealthStream | None = None
    #: The connection to the driver's endpoint, dialled at the first call and kept for later ones,
    #: as kubelet's DRA manager keeps one per registered plugin (`getOrCreateGRPCConn`).
    _channel: grpc.Channel | None = None

    def driver_channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = channel(self.info.endpoint)
        return self._channel

    def close(self) -> None:
        if self.health is not None:
            self.health.close()
        if self._channel is not None:
            self._channel.close()


class HealthStream:
    """NodeWatchResources read by a thread into a queue; `until` reads it with a deadline."""

    def __init__(self, endpoint: str, service: str) -> None:
        pb, grpc_mod = HEALTH_SERVICES[service]
        self.pb = pb
        self._channel = channel(endpoint)
        self._call = grpc_mod.DRAResourceHealthStub(self._channel).NodeWatchResources(
            pb.NodeWatchResourcesRequest()
        )
        self.queue: queue.Queue[Any] = queue.Queue()
        self.ended = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        try:
            for response in self._call:
                self.queue.put(response)
        except grpc.RpcError:
            pass
        finally:
            self.ended.set()

    def decode(self, response: Any) -> dict[str, str]:
        """{device name: Healthy/Unhealthy/Unknown}"""
        return {
            d.device.device_name: self.pb.HealthStatus.Name(d.health).capitalize() for d in response.devices
        }

    def next(self, timeout: float = 5.0) -> dict[str, str]:
        return self.decode(self.queue.get(timeout=timeout))

    def until_raw(self, predicate: Callable[[Any], bool], timeout: float = 1.0) -> Any:
        """The first NodeWatchResourcesResponse within `timeout` that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                response = self.queue.get(timeout=remaining)
            except queue.Empty:
                break
            if predicate(response):
                return response
        raise AssertionError(f"no matching health report within {timeout}s")

    def until(self, predicate: Callable[[dict[str, str]], bool], timeout: float = 1.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        seen = None
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                seen = self.next(remaining)
            except queue.Empty:
                break
            if predicate(seen):
                return seen
        raise AssertionError(f"no matching health report within {timeout}s; last: {seen}")

    def close(self) -> None:
        self._call.cancel()
        self._channel.close()


@dataclass
class FakeDraKubelet:
    """The plugin watcher over `registry_dir`, and calls to the registered driver."""

    registry_dir: Path
    health_service: str = "v1alpha1.DRAResourceHealth"
    known_services: tuple[str, ...] = ("v1.DRAPlugin", "v1beta1.DRAPlugin")
    registrations: list[Registration] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _active: dict[str, Registration] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="fake-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for registration in self._active.values():
            registration.close()
        self._active.clear()

    def restart(self, wipe_registry: bool = False) -> None:
        self.stop()
        if wipe_registry:
            shutil.rmtree(self.registry_dir, ignore_errors=True)
            self.registry_dir.mkdir(exist_ok=True)  # a plugin may have made it again already
        self.start()

    # -- the plugin watcher ------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(SCAN):
            present = {}
            for path in self.registry_dir.glob("*"):
                try:
                    st = path.stat()  # a new file may reuse the inode number: its ctime tells
                except FileNotFoundError:
                    continue  # removed since listed: a plugin going away
                if not path.name.startswith(".") and stat.S_ISSOCK(st.st_mode):
                    present[path.name] = (st.st_ino, st.st_ctime_ns)
            for name in set(self._active) - set(present):
                self._deregister(name)
            for name, inode in present.items():
                if name not in self._active or self._active[name].inode != inode:
                    if name in self._active:  # the plugin came back on a new socket
                        self._deregister(name)
                    self._register(self.registry_dir / name, inode)

    def _register(self, socket: Path, inode: tuple[int, int]) -> None:
        with channel(socket) as ch:
            stub = reg_grpc.RegistrationStub(ch)  # type: ignore[no-untyped-call]
            try:
                info = stub.GetInfo(reg.InfoRequest(), timeout=5)
            except grpc.RpcError:
                return  # not serving yet: the next scan tries again
            service = next((s for s in info.supported_versions if s in self.known_services), None)
            if info.type != "DRAPlugin" or service is None:
                self.refused.append(socket.name)
                stub.NotifyRegistrationStatus(
                    reg.RegistrationStatus(plugin_registered=False, error="unsupported")
                )
                self._active[socket.name] = Registration(socket, inode, info, "")
                return
            stub.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=True), timeout=5)
        registration = Registration(socket, inode, info, service)
        if self.health_service in info.supported_versions:
            registration.health = HealthStream(info.endpoint, self.health_service)
        self._active[socket.name] = registration
        self.registrations.append(registration)

    def _deregister(self, name: str) -> None:
        self._active.pop(name).close()

    # -- the DRA manager -------------------------------------------------------------------------
    def plugin(self, driver: str) -> Registration:
        for registration in list(self._active.values()):
            if registration.info.name == driver and registration.service:
                return registration
        raise AssertionError(f"DRA driver {driver} is not registered")

    def prepare(
        self, driver: str, claims: list[tuple[str, str, str]], service: str | None = None
    ) -> dict[str, Any]:
        """NodePrepareResources for (namespace, name, uid) claims -> {uid: NodePrepareResourceResponse}."""
        return self._call(driver, "NodePrepareResources", claims, service)

    def unprepare(
        self, driver: str, claims: list[tuple[str, str, str]], service: str | None = None
    ) -> dict[str, Any]:
        return self._call(driver, "NodeUnprepareResources", claims, service)

    def _call(
        self, driver: str, method: str, claims: list[tuple[str, str, str]], service: str | None
    ) -> dict[str, Any]:
        registration = self.plugin(driver)
        pb, grpc_mod = DRA_SERVICES[service or registration.service]
        request = getattr(pb, f"{method}Request")(
            claims=[pb.Claim(namespace=ns, name=name, uid=uid) for ns, name, uid in claims]
        )
        stub = grpc_mod.DRAPluginStub(registration.driver_channel())
        response = getattr(stub, method)(request, timeout=10)
        return dict(response.claims)

    def health(self, driver: str) -> HealthStream:
        stream = self.plugin(driver).health
        assert stream is not None, "no health stream"
        return stream
