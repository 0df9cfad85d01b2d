"""How the node's API-server clients get their credentials: a kubeconfig file (token, token file,
client certificate, CA, inline `*-data`), the pod's in-cluster service account, or a kubeconfig's
exec plugin. The exec plugin is run here, not by lightkube, which supports neither
`client.authentication.k8s.io/v1` nor plugins that return client certificates.

Each returns a lightkube `SingleConfig`; a problem is a ValueError naming it (the caller turns it
into a config error). Nothing is imported until a client is made.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lightkube.config.kubeconfig import SingleConfig

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
EXEC_TIMEOUT = 30.0
EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
    "client.authentication.k8s.io/v1alpha1",
)


def from_file(path: str, raw: bytes) -> SingleConfig:
    import yaml
    from lightkube import KubeConfig

    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ValueError("not a kubeconfig (expected a mapping)")
    config = KubeConfig.from_dict(data, fname=path).get()
    if config is None:
        raise ValueError("no current-context")
    return config


def in_cluster(env: Mapping[str, str]) -> SingleConfig:
    """The pod's service account; the token file is re-read when the server answers 401."""
    from lightkube import KubeConfig
    from lightkube.config.models import Cluster, User

    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ValueError("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not in a cluster")
    host = f"[{host}]" if ":" in host else host
    token_file = SERVICE_ACCOUNT_DIR / "token"
    config = KubeConfig.from_one(
        cluster=Cluster(
            server=f"https://{host}:{port}", certificate_auth=str(SERVICE_ACCOUNT_DIR / "ca.crt")
        ),
        user=User(token_file=str(token_file)),
    ).get()
    assert config is not None
    return config


def with_exec_credential(config: SingleConfig, env: Mapping[str, str]) -> tuple[SingleConfig, float | None]:
    """Run the kubeconfig's exec plugin; its token or client certificate replaces the `exec` entry."""
    import msgspec

    assert config.user is not None and config.user.exec is not None
    spec = config.user.exec
    if spec.apiVersion not in EXEC_API_VERSIONS:
        raise ValueError(
            f"exec plugin apiVersion {spec.apiVersion!r} is not one of {', '.join(EXEC_API_VERSIONS)}"
        )
    info = {"apiVersion": spec.apiVersion, "kind": "ExecCredential", "spec": {"interactive": False}}
    run_env = {**env, **{v.name: v.value for v in spec.env or []}, "KUBERNETES_EXEC_INFO": json.dumps(info)}
    try:
        proc = subprocess.run(
            [spec.command, *(spec.args or [])],
            env=run_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=EXEC_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ValueError(f"exec plugin {spec.command}: {err}") from err
    if proc.returncode != 0:
        raise ValueError(
            f"exec plugin {spec.command} failed ({proc.returncode}): {proc.stderr.decode().strip()}"
        )
    status = json.loads(proc.stdout).get("status") or {}
    token, cert, key = status.get("token"), status.get("clientCertificateData"), status.get("clientKeyData")
    if not token and not (cert and key):
        raise ValueError(f"exec plugin {spec.command} returned neither a token nor a client certificate")
    user = msgspec.structs.replace(
        config.user,
        exec=None,
        token=token or None,
        client_cert_data=base64.b64encode(cert.encode()).decode() if cert and key else None,
        client_key_data=base64.b64encode(key.encode()).decode() if cert and key else None,
    )
    return config._replace(user=user), _expiry(status.get("expirationTimestamp"))


def _expiry(stamp: str | None) -> float | None:
    """A credential's RFC 3339 expiry as a monotonic deadline (a little early, to renew in time)."""
    if not stamp:
        return None
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return time.monotonic() + (at - datetime.now(UTC)).total_seconds() - 10
