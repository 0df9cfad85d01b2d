"""Registering a pool with the kubelet through `kubelet.sock` (used when there is no plugins_registry).

The kubelet dials our socket back as soon as Register returns, so callers serve first. A failure is
returned, not raised past the caller, because the daemon retries on the next kubelet.sock event or
after a short backoff instead of exiting as the reference does.
"""

from __future__ import annotations

from pathlib import Path

import grpc

from pycni.device_plugin.api import deviceplugin_v1beta1_pb2 as dp
from pycni.device_plugin.api import deviceplugin_v1beta1_pb2_grpc as dp_grpc
from pycni.device_plugin.pools import Pool
from pycni.device_plugin.server import API_VERSION, OPTIONS

KUBELET_SOCKET = "kubelet.sock"


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
