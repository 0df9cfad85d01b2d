"""The driver's gRPC side: the plugin socket (DRAPlugin v1 and v1beta1, DRAResourceHealth v1 and
v1alpha1) and the registration socket kubelet's plugin watcher finds.

Both API versions of each service are served by one class given that version's messages: the
messages are identical in content, only their proto packages differ. A health stream sends the
full report at once, again on every change, and at least every `HEARTBEAT` seconds (kubelet takes a
device it has not heard of for 30 s as Unknown). A socket's server is replaced, not reused, when
its file disappears: a gRPC server cannot listen again on a new inode.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from pycni.dra.claims import ClaimRef
from pycni.dra.inventory import Inventory, report
from pycni.dra.metrics import DraMetrics
from pycni.dra.prepare import Outcome, Preparer
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

log = logging.getLogger(__name__)

PLUGIN_TYPE = "DRAPlugin"
#: Every gRPC service on the plugin socket, newest first (kubelet takes the first it knows).
SERVICES = ("v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth")
HEARTBEAT = 10.0
#: How often a health stream checks that kubelet is still listening.
POLL = 0.5


class DraServicer:
    """NodePrepareResources / NodeUnprepareResources of one API version (`pb`: its messages)."""

    def __init__(self, pb: ModuleType, preparer: Preparer, metrics: DraMetrics) -> None:
        self.pb, self.preparer, self.metrics = pb, preparer, metrics

    def NodePrepareResources(self, request: Any, context: Any) -> Any:  # noqa: N802
        start = time.monotonic()
        outcomes = self.preparer.prepare(_refs(request))
        response = self.pb.NodePrepareResourcesResponse()
        for uid, outcome in outcomes.items():
            entry = response.claims[uid]
            entry.error = outcome.error
            for dev in outcome.devices:
                entry.devices.add(
                    request_names=dev.requests,
                    pool_name=dev.pool,
                    device_name=dev.device,
                    cdi_device_ids=dev.cdi_ids,
                )
        self._account("prepare", start, outcomes)
        return response

    def NodeUnprepareResources(self, request: Any, context: Any) -> Any:  # noqa: N802
        start = time.monotonic()
        outcomes = self.preparer.unprepare(_refs(request))
        response = self.pb.NodeUnprepareResourcesResponse()
        for uid, outcome in outcomes.items():
            response.claims[uid].error = outcome.error
        self._account("unprepare", start, outcomes)
        return response

    def _account(self, operation: str, start: float, outcomes: dict[str, Outcome]) -> None:
        errors = sum(1 for o in outcomes.values() if o.error)
        self.metrics.call(operation, time.monotonic() - start, errors, len(outcomes))


def _refs(request: Any) -> list[ClaimRef]:
    return [ClaimRef(c.namespace, c.name, c.uid) for c in request.claims]


class HealthServicer:
    """NodeWatchResources of one API version; `messages` adds v1's per-device message."""

    def __init__(self, pb: ModuleType, inventory: Inventory, pool: str, messages: bool) -> None:
        self.pb, self.inventory, self.pool, self.messages = pb, inventory, pool, messages

    def NodeWatchResources(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        version, snap = self.inventory.snapshot()
        log.info("health stream opened", extra={"devices": len(snap.devices)})
        yield self._response(snap.checked_at, report(snap))
        sent = time.monotonic()
        while context.is_active() and not self.inventory.closed:
            changed = self.inventory.wait_change(version, timeout=POLL)
            if changed or time.monotonic() - sent >= HEARTBEAT:
                version, snap = self.inventory.snapshot()
                yield self._response(snap.checked_at, report(snap))
                sent = time.monotonic()

    def _response(self, checked_at: float, entries: list[Any]) -> Any:
        out = self.pb.NodeWatchResourcesResponse()
        for entry in entries:
            health = out.devices.add()
            health.device.pool_name = self.pool
            health.device.device_name = entry.device
            health.health = self.pb.HealthStatus.Value(entry.health.upper())
            health.last_updated_time = int(checked_at)
            if self.messages:
                health.message = entry.message[:1024]
        return out


class RegistrationServicer(reg_grpc.RegistrationServicer):
    """Who we are, for kubelet's plugin watcher; and what kubelet made of it."""

    def __init__(self, driver: str, endpoint: Path, on_status: Callable[[bool, str], None]) -> None:
        self.driver, self.endpoint, self.on_status = driver, endpoint, on_status

    def GetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return reg.PluginInfo(
            type=PLUGIN_TYPE, name=self.driver, endpoint=str(self.endpoint), supported_versions=list(SERVICES)
        )

    def NotifyRegistrationStatus(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.on_status(request.plugin_registered, request.error)
        return reg.RegistrationStatusResponse()


class SocketServer:
    """A gRPC server on one unix socket; `current` tells whether the file there is still ours."""

    def __init__(self, path: Path, add_services: Callable[[Any], None], workers: int) -> None:
        self.path = path
        self._server: Any = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dra")
        )
        add_services(self._server)
        self._identity: tuple[int, int] | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        if self._server.add_insecure_port(f"unix://{self.path}") == 0:
            raise OSError(f"cannot listen on {self.path}")
        self._server.start()
        self._identity = _identity(self.path)
        log.info("serving", extra={"socket": str(self.path)})

    def current(self) -> bool:
        try:
            return _identity(self.path) == self._identity
        except OSError:
            return False

    def stop(self, remove_socket: bool = True) -> None:
        self._server.stop(grace=None).wait(5)
        if remove_socket and self.current():
            self.path.unlink(missing_ok=True)


def _identity(path: Path) -> tuple[int, int]:
    """The file at `path`: a new one may reuse a freed inode number, never with the same ctime."""
    st = os.stat(path)
    return st.st_ino, st.st_ctime_ns


def plugin_services(
    preparer: Preparer, inventory: Inventory, pool: str, metrics: DraMetrics
) -> Callable[[Any], None]:
    def add(server: Any) -> None:
        for pb, grpc_mod in ((dra_v1_pb2, dra_v1_pb2_grpc), (dra_v1beta1_pb2, dra_v1beta1_pb2_grpc)):
            grpc_mod.add_DRAPluginServicer_to_server(DraServicer(pb, preparer, metrics), server)
        drahealth_v1_pb2_grpc.add_DRAResourceHealthServicer_to_server(  # type: ignore[no-untyped-call]
            HealthServicer(drahealth_v1_pb2, inventory, pool, messages=True), server
        )
        drahealth_v1alpha1_pb2_grpc.add_DRAResourceHealthServicer_to_server(  # type: ignore[no-untyped-call]
            HealthServicer(drahealth_v1alpha1_pb2, inventory, pool, messages=False), server
        )

    return add


def registration_services(
    driver: str, endpoint: Path, on_status: Callable[[bool, str], None]
) -> Callable[[Any], None]:
    def add(server: Any) -> None:
        reg_grpc.add_RegistrationServicer_to_server(  # type: ignore[no-untyped-call]
            RegistrationServicer(driver, endpoint, on_status), server
        )

    return add
