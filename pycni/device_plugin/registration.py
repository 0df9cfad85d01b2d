"""Registering a pool with the kubelet through `kubelet.sock` (used when there is no plugins_registry).

The kubelet dials our socket back as soon as Register returns, so callers serve first. A failure is
returned, not raised past the caller, because the service retries on the next kubelet.sock event or
after a short backoff instead of exiting as the reference does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import grpc

from pycni.device_plugin.server import API_VERSION, OPTIONS
from pycni.k8s.api import deviceplugin_v1beta1_pb2 as dp
from pycni.k8s.api import deviceplugin_v1beta1_pb2_grpc as dp_grpc
from pycni.k8s.paths import KUBELET_SOCKET
from pycni.k8s.pools.membership import Pool

log = logging.getLogger(__name__)


class RegistrationError(Exception):
    """The kubelet could not be reached or refused the registration."""


def register(kubelet_dir: Path, pool: Pool, timeout: float = 2.0) -> None:
    """Calls `Register` with the socket's file name as endpoint (relative to `kubelet_dir`)."""
    target = f"unix://{kubelet_dir / KUBELET_SOCKET}"
    request = dp.RegisterRequest(
        version=API_VERSION, endpoint=pool.socket_name, resource_name=pool.resource, options=OPTIONS
    )
    with grpc.insecure_channel(target) as channel:
        try:
            dp_grpc.RegistrationStub(channel).Register(  # type: ignore[no-untyped-call]
                request, timeout=timeout
            )
        except grpc.RpcError as err:
            raise RegistrationError(
                f"Register {pool.resource} at {target}: {err.code().name}: {err.details()}"
            ) from err


class Registrar:
    """Which pools still need `Register`, and when to try next (50 ms doubling to 5 s after failures)."""

    FIRST_RETRY = 0.05
    MAX_RETRY = 5.0

    def __init__(self, kubelet_dir: Path, on_result: Callable[[str, bool], None] | None = None) -> None:
        self.kubelet_dir = kubelet_dir
        self.on_result = on_result
        self.registered: dict[str, bool] = {}
        self._due: dict[str, tuple[float, float]] = {}  # resource -> (next attempt, backoff)

    def want(self, resources: Iterable[str]) -> None:
        """Register these now (new pools, or the kubelet came back)."""
        now = time.monotonic()
        for resource in resources:
            self._due[resource] = (now, self.FIRST_RETRY)
            self.registered[resource] = False

    def forget(self, resource: str) -> None:
        self._due.pop(resource, None)
        self.registered.pop(resource, None)

    def run_due(self, pools: Mapping[str, Pool]) -> None:
        """Registers what is due. Without kubelet.sock nothing is tried: its creation calls `want`."""
        now = time.monotonic()
        present = (self.kubelet_dir / KUBELET_SOCKET).exists()
        for resource, (when, backoff) in list(self._due.items()):
            if when > now or resource not in pools:
                continue
            if not present:
                log.info("waiting for kubelet.sock to register", extra={"resource": resource})
                self._due[resource] = (math.inf, backoff)
                continue
            try:
                register(self.kubelet_dir, pools[resource])
            except RegistrationError as err:
                log.warning(
                    "registration failed, will retry", extra={"resource": resource, "error": str(err)}
                )
                self._report(resource, False)
                self._due[resource] = (now + backoff, min(backoff * 2, self.MAX_RETRY))
                continue
            del self._due[resource]
            self.registered[resource] = True
            log.info("registered with kubelet", extra={"resource": resource})
            self._report(resource, True)

    def _report(self, resource: str, ok: bool) -> None:
        if self.on_result is not None:
            self.on_result(resource, ok)

    def next_deadline(self) -> float | None:
        deadline = min((when for when, _ in self._due.values()), default=math.inf)
        return None if deadline == math.inf else deadline
