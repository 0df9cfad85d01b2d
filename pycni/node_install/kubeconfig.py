"""A kubeconfig for the meta-plugin, made from this pod's service-account token and CA.

Kubelet runs the meta-plugin on the host, outside any pod, so it cannot read the token the
kubelet projects into our pod; we write it into a kubeconfig in the host's conf dir (0600) and
write it again whenever the projected token rotates (the reference's thin installer writes it
once, and the token expires an hour later: multus#852, rke2#9313). JSON is valid YAML, so no
YAML writer is needed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class NoServiceAccount(Exception):
    """The pod has no token or CA, or no API server address in its environment."""


@dataclass(frozen=True)
class ServiceAccount:
    server: str
    token: str
    ca: bytes

    @classmethod
    def read(cls, env: Mapping[str, str], directory: Path = SERVICE_ACCOUNT_DIR) -> ServiceAccount:
        """The in-cluster credentials, as client libraries read them (host and port from env)."""
        host = env.get("KUBERNETES_SERVICE_HOST", "")
        port = env.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise NoServiceAccount("KUBERNETES_SERVICE_HOST is not set: not running in a pod?")
        try:
            token = (directory / "token").read_text().strip()
            ca = (directory / "ca.crt").read_bytes()
        except OSError as err:
            raise NoServiceAccount(f"cannot read the service account in {directory}: {err}") from err
        if not token:
            raise NoServiceAccount(f"the service-account token in {directory} is empty")
        address = f"[{host}]" if ":" in host else host
        return cls(f"https://{address}:{port}", token, ca)


def render(account: ServiceAccount) -> bytes:
    """The kubeconfig document: one cluster, one user with a bearer token, one context."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": account.server,
                    "certificate-authority-data": base64.b64encode(account.ca).decode(),
                },
            }
        ],
        "users": [{"name": "pycni", "user": {"token": account.token}}],
        "contexts": [{"name": "pycni", "context": {"cluster": "local", "user": "pycni"}}],
        "current-context": "pycni",
    }
    return (json.dumps(doc, indent=2) + "\n").encode()
