"""The life of a node service process (the device plugin, the DRA driver) once its configuration is
known to be good: signals, the metrics and probes endpoint, start, the event loop, exit status.

SIGTERM, SIGINT, SIGHUP and SIGQUIT all mean a clean shutdown (as the reference device plugin
treats them); a service that cannot start is shut down at once and the process exits 1.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Protocol

from prometheus_client import CollectorRegistry

from pycni.k8s.endpoint import serve_in_thread

log = logging.getLogger(__name__)

EXIT_START = 1
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


class _Metrics(Protocol):
    registry: CollectorRegistry


class NodeService(Protocol):
    @property
    def metrics(self) -> _Metrics: ...
    def start(self) -> None: ...
    def run(self) -> None: ...
    def shutdown(self) -> None: ...
    def request_stop(self) -> None: ...
    def healthy(self) -> bool: ...
    def ready(self) -> bool: ...


def run_service(service: NodeService, metrics_address: str) -> int:
    """Starts `service` and runs it until a signal; its exit status."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        service.request_stop()

    for sig in SIGNALS:
        signal.signal(sig, on_signal)
    endpoint = None
    try:
        endpoint = serve_in_thread(metrics_address, service.metrics.registry, service.healthy, service.ready)
        service.start()
    except Exception as err:
        log.exception("cannot start", extra={"error": str(err)})
        service.shutdown()
        if endpoint is not None:
            endpoint.close()
        return EXIT_START
    log.info("started")
    try:
        service.run()
    finally:
        if endpoint is not None:
            endpoint.close()
    return 0
