"""The multus config: multus-cni's keys with its defaults, plus ours (`manifests`,
`podResourcesSocket`, `deviceInfoDir`). Cheap to import (pydantic only)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from pycni.cni.config import NetConf
from pycni.hw import devinfo
from pycni.k8s.paths import POD_RESOURCES_SOCKET

#: multus-cni's levels, most verbose first, as `logging` levels.
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "verbose": logging.INFO,
    "error": logging.ERROR,
    "panic": logging.CRITICAL,
}


class MultusConf(NetConf):
    kubeconfig: str = Field(
        "", description='Path of a kubeconfig, or "incluster" for the pod\'s service account; empty: no API.'
    )
    cluster_network: str = Field(
        "",
        alias="clusterNetwork",
        description="NAD in multusNamespace, a config `name` in confDir, a directory or a file.",
    )
    default_networks: list[str] = Field(default_factory=list, alias="defaultNetworks")
    delegates: list[dict[str, Any]] = Field(
        default_factory=list, description="Inline configs; [0] is the cluster network without clusterNetwork."
    )
    multus_namespace: str = Field("kube-system", alias="multusNamespace")
    system_namespaces: list[str] = Field(default_factory=lambda: ["kube-system"], alias="systemNamespaces")
    namespace_isolation: bool = Field(False, alias="namespaceIsolation")
    global_namespaces_raw: str = Field("", alias="globalNamespaces", description="Comma-separated.")
    readiness_indicator_file: str = Field("", alias="readinessindicatorfile")
    conf_dir: Path = Field(Path("/etc/cni/multus/net.d"), alias="confDir")
    cni_dir: Path = Field(Path("/var/lib/cni/multus"), alias="cniDir")
    bin_dir: str = Field("/opt/cni/bin", alias="binDir")
    log_level: str = Field("panic", alias="logLevel")
    log_file: str = Field("", alias="logFile")
    log_to_stderr: bool = Field(True, alias="logToStderr")
    retry_delete_on_error: bool = Field(
        False, alias="retryDeleteOnError", description="Accepted; the plan is always kept until DEL succeeds."
    )
    manifests: str = Field("", description="Without kubeconfig: a directory of Pod and NAD manifests.")
    pod_resources_socket: Path = Field(POD_RESOURCES_SOCKET, alias="podResourcesSocket")
    device_info_dir: Path = Field(
        devinfo.DP_DIR.parent, alias="deviceInfoDir", description="The NPWG device-info root (dp/, cni/)."
    )

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    @field_validator("log_to_stderr", "namespace_isolation", "retry_delete_on_error", mode="before")
    @classmethod
    def _bool_or_string(cls, value: Any) -> Any:
        """The reference's generated configs sometimes quote booleans."""
        return value.strip().lower() == "true" if isinstance(value, str) else value

    @model_validator(mode="after")
    def _has_cluster_network(self) -> Self:
        if not self.cluster_network and not self.delegates:
            raise ValueError("set clusterNetwork or delegates: a pod needs its cluster network")
        if self.delegates and not all(
            isinstance(d, dict) and (d.get("type") or d.get("plugins")) for d in self.delegates
        ):
            raise ValueError("every entry of delegates must be a config with a type, or a conflist")
        return self

    @property
    def global_namespaces(self) -> list[str]:
        """`globalNamespaces` as a list; unset means ["default"] (once set, list `default` yourself)."""
        listed = [n.strip() for n in self.global_namespaces_raw.split(",") if n.strip()]
        return listed or ["default"]

    @property
    def runtime_capability_args(self) -> dict[str, Any]:
        """What the runtime passed in `runtimeConfig`: for the cluster network only (NPWG §7.5)."""
        value = self.raw.get("runtimeConfig")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def status_dir(self) -> Path:
        return self.cni_dir / "network-status"

    @property
    def claim_status_dir(self) -> Path:
        """Without an API server: each ResourceClaim's device status, `<dir>/<namespace>/<claim>.json`."""
        return self.cni_dir / "claim-status"
