"""A Kubernetes API server stand-in: HTTPS with its own CA, a bearer token, the real REST paths and
JSON shapes for pods, pods/status, NADs and events, and a 409 on the first status PUT; plus any
collection a test registers in `cluster.store` (`tests/helpers/rest_store.py`: nodes,
ResourceSlices, ResourceClaims for the DRA driver).

It listens inside a test's "node" namespace (the socket is created there, then served from a
thread of the test process), so multus running in that namespace reaches it on 127.0.0.1.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pycni.net import netns as cni_netns
from tests.helpers.rest_store import ObjectStore

TOKEN = "s3cret-node-token"
POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)(/status)?$")
NAD = re.compile(r"^/apis/k8s\.cni\.cncf\.io/v1/namespaces/([^/]+)/network-attachment-definitions/([^/]+)$")
EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path

    @property
    def ca_data(self) -> str:
        return base64.b64encode(self.ca.read_bytes()).decode()


def make_pki(directory: Path) -> Pki:
    """A CA and a server certificate for 127.0.0.1 (openssl, EC keys: fast)."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca")
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    return Pki(directory / "ca.crt", directory / "srv.crt", directory / "srv.key")


@dataclass
class Cluster:
    """The server's objects and what it saw."""

    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    nads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: TCP connections accepted (a client that reuses its connection makes one).
    connections: int = 0
    #: Status PUTs still to refuse with 409 (the first one is, by default).
    conflicts: int = 1
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Other collections, served generically.
    store: ObjectStore = field(default_factory=ObjectStore)

    def add(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", "default"), meta["name"])
        if obj["kind"] == "Pod":
            meta.setdefault("resourceVersion", "1")
            self.pods[key] = obj
        else:
            self.nads[key] = obj

    def pod_annotation(self, namespace: str, name: str, key: str) -> str | None:
        with self.lock:
            annotations = self.pods[namespace, name]["metadata"].get("annotations") or {}
            value = annotations.get(key)
            return str(value) if value is not None else None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API server
    #: The body `_generic` read for a request that turned out not to be one of its collections.
    _unread: dict[str, Any] = {}  # noqa: RUF012

    def setup(self) -> None:
        super().setup()
        # A reply's headers and body leave in two writes; without this, Nagle holds the body
        # for the client's delayed ACK (40 ms), which a real server's single write never meets.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.cluster.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._reply(401, _status(401, "Unauthorized", "Unauthorized"))
        return False

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        value: dict[str, Any] = json.loads(self.rfile.read(length))
        return value

    def _generic(self, method: str) -> bool:
        """Answers a request for a collection of `cluster.store`; False for any other path."""
        body = self._body() if method in ("POST", "PUT") else None
        reply = self.server.cluster.store.handle(method, self.path, body)
        if reply is None:
            if body is not None:
                self._unread = body
            return False
        self._reply(*reply)
        return True

    def do_GET(self) -> None:
        cluster = self.server.cluster
        path = self.path.split("?")[0]
        cluster.requests.append(("GET", path))
        if not self._authorised() or self._generic("GET"):
            return
        pod, nad = POD.match(path), NAD.match(path)
        with cluster.lock:
            store, key = (
                (cluster.pods, pod.groups()[:2]) if pod else (cluster.nads, nad.groups() if nad else None)
            )
            obj = store.get(key) if key else None  # type: ignore[arg-type]
            if obj is None:
                self._reply(404, _status(404, "NotFound", f"{path} not found"))
            else:
                self._reply(200, copy.deepcopy(obj))

    def do_PUT(self) -> None:
        cluster = self.server.cluster
        path = self.path.split("?")[0]
        cluster.requests.append(("PUT", path))
        if not self._authorised() or self._generic("PUT"):
            return
        match = POD.match(path)
        if match is None or not match.group(3):
            self._reply(405, _status(405, "MethodNotAllowed", "only pods/status is writable here"))
            return
        body = self._unread
        with cluster.lock:
            key = (match.group(1), match.group(2))
            current = cluster.pods.get(key)
            if current is None:
                self._reply(404, _status(404, "NotFound", "pod not found"))
                return
            stale = body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]
            if cluster.conflicts > 0 or stale:
                cluster.conflicts = max(0, cluster.conflicts - 1)
                current["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
                self._reply(409, _status(409, "Conflict", "the object has been modified; please try again"))
                return
            body["metadata"]["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
            cluster.pods[key] = body
            self._reply(200, copy.deepcopy(body))

    def do_POST(self) -> None:
        cluster = self.server.cluster
        path = self.path.split("?")[0]
        cluster.requests.append(("POST", path))
        if not self._authorised() or self._generic("POST"):
            return
        if EVENTS.match(path) is None:
            self._reply(404, _status(404, "NotFound", path))
            return
        body = self._unread
        with cluster.lock:
            cluster.events.append(body)
        self._reply(201, body)

    def do_DELETE(self) -> None:
        self.server.cluster.requests.append(("DELETE", self.path.split("?")[0]))
        if not self._authorised() or self._generic("DELETE"):
            return
        self._reply(404, _status(404, "NotFound", self.path))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: Cluster


class FakeApiServer:
    """Serves `cluster` over HTTPS on 127.0.0.1 of the netns at `netns_path`."""

    def __init__(self, pki: Pki, netns_path: str, cluster: Cluster | None = None) -> None:
        self.cluster = cluster or Cluster()
        with cni_netns.entered(netns_path):
            self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.cluster = self.cluster
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert, pki.key)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.pki = pki
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """The API server goes down: connections are refused from now on."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)

    def kubeconfig(self, path: Path, token: str = TOKEN) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {"server": self.url, "certificate-authority-data": self.pki.ca_data},
                        }
                    ],
                    "users": [{"name": "node", "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "node"}}],
                    "current-context": "test",
                }
            )
        )
        return path
