"""The HTTP endpoint of a node process: `/metrics` for Prometheus, `/healthz` and `/readyz` for
kubelet's probes. On a configurable address that defaults to localhost (the DaemonSets run in
the host network, so anything else would expose the node's internals to the whole network).

One small `http.server` server, so a process can drive it either way: the device plugin (which
has threads anyway) serves it from a thread; the node daemon, single-threaded because it forks,
calls `handle_one` from its own selector loop when the socket is readable.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: A probe or scrape that has not sent its request within this time is dropped.
REQUEST_TIMEOUT = 2.0

Check = Callable[[], bool]


def parse_address(address: str) -> tuple[str, int]:
    """`127.0.0.1:9161`, `[::1]:9161` or `:9161` (localhost; port 0 picks a free one); else ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or DEFAULT_HOST, int(port)


class _Server(http.server.HTTPServer):
    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, healthy: Check, ready: Check):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.registry, self.healthy, self.ready = registry, healthy, ready
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(self.server.registry), content_type)
        elif path in ("/healthz", "/readyz"):
            ok = (self.server.healthy if path == "/healthz" else self.server.ready)()
            self._reply(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds: no access log."""


class Endpoint:
    """A bound endpoint; `serve_in_thread` or `handle_one` (from a selector loop) serve it."""

    def __init__(self, address: str, registry: CollectorRegistry, healthy: Check, ready: Check) -> None:
        self._server = _Server(parse_address(address), registry, healthy, ready)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def fileno(self) -> int:
        return self._server.fileno()

    def handle_one(self) -> None:
        """Answer one waiting client (call when the socket is readable)."""
        self._server.timeout = 0
        self._server.handle_request()

    def serve_in_thread(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="pycni-endpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


def serve_in_thread(
    address: str, registry: CollectorRegistry, healthy: Check, ready: Check
) -> Endpoint | None:
    """A node service's endpoint, served from a thread; None when `address` is `''` (none wanted)."""
    if not address:
        return None
    endpoint = Endpoint(address, registry, healthy, ready)
    endpoint.serve_in_thread()
    log.info("serving metrics and probes", extra={"address": address})
    return endpoint
