"""The node's primary CNI network, as kubelet picks it, and the meta-plugin config put in front.

Kubelet (through libcni) takes the first config file of the conf dir by name, among `.conf`,
`.conflist` and `.json`, that parses; so does this, skipping our own file. The generated list
carries the primary's `cniVersion` and capabilities (the runtime passes capability arguments
only to plugins that declare them) and names the primary file as the cluster network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: What kubelet's libcni reads as network configs.
CONF_EXTENSIONS = (".conf", ".conflist", ".json")
MULTUS_CONF_NAME = "00-multus.conflist"
DEFAULT_NETWORK_NAME = "multus-cni-network"


@dataclass(frozen=True)
class PrimaryConfig:
    """The primary network's file and what the meta-plugin config takes from it."""

    path: Path
    name: str
    cni_version: str
    capabilities: dict[str, bool]


def find_primary(conf_dir: Path, own_name: str = MULTUS_CONF_NAME, master: str = "") -> PrimaryConfig | None:
    """The primary network: `master` when given, else the first valid config by file name."""
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return None
    if master:
        names = [master] if master in names else []
    for name in names:
        if name == own_name or not name.endswith(CONF_EXTENSIONS):
            continue
        parsed = _parse(conf_dir / name)
        if parsed is not None:
            return parsed
    return None


def _parse(path: Path) -> PrimaryConfig | None:
    """A config or config list with a name and at least one plugin; None for anything else."""
    try:
        raw = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        return None
    plugins = raw.get("plugins") if "plugins" in raw else [raw]
    if not isinstance(plugins, list) or not plugins or not all(isinstance(p, dict) for p in plugins):
        return None
    if not all(isinstance(p.get("type"), str) and p["type"] for p in plugins):
        return None
    return PrimaryConfig(path, raw["name"], str(raw.get("cniVersion") or "0.3.1"), _capabilities(plugins))


def _capabilities(plugins: list[dict[str, Any]]) -> dict[str, bool]:
    """Every capability some plugin of the list declares (the runtime then passes its argument)."""
    found: dict[str, bool] = {}
    for plugin in plugins:
        caps = plugin.get("capabilities")
        if isinstance(caps, dict):
            found.update({key: True for key, on in caps.items() if on is True})
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class MultusOptions:
    """The meta-plugin keys the installer sets (host paths: kubelet runs the plugin on the host)."""

    conf_dir_host: Path = Path("/etc/cni/net.d")
    kubeconfig_host: str = ""
    bin_dir_host: str = "/opt/cni/bin"
    cni_dir: str = "/var/lib/cni/multus"
    #: Pod and NAD manifests for a node without an API server (multus's `manifests`).
    manifests: str = ""
    cni_version: str = ""
    override_network_name: bool = False
    namespace_isolation: bool = False
    global_namespaces: str = ""
    readiness_indicator_file: str = ""
    log_level: str = ""
    log_file: str = ""
    log_to_stderr: bool | None = None


def multus_conflist(primary: PrimaryConfig, opts: MultusOptions) -> dict[str, Any]:
    """The `00-multus.conflist` document for this primary network."""
    plugin: dict[str, Any] = {
        "type": "multus",
        "clusterNetwork": str(opts.conf_dir_host / primary.path.name),
        "cniDir": opts.cni_dir,
        "binDir": opts.bin_dir_host,
    }
    if opts.kubeconfig_host:
        plugin["kubeconfig"] = opts.kubeconfig_host
    elif opts.manifests:
        plugin["manifests"] = opts.manifests
    if primary.capabilities:
        plugin["capabilities"] = primary.capabilities
    plugin.update(_optional_keys(opts))
    return {
        "cniVersion": opts.cni_version or primary.cni_version,
        "name": primary.name if opts.override_network_name else DEFAULT_NETWORK_NAME,
        "plugins": [plugin],
    }


def _optional_keys(opts: MultusOptions) -> Mapping[str, Any]:
    keys: dict[str, Any] = {}
    if opts.namespace_isolation:
        keys["namespaceIsolation"] = True
    if opts.global_namespaces:
        keys["globalNamespaces"] = opts.global_namespaces
    if opts.readiness_indicator_file:
        keys["readinessindicatorfile"] = opts.readiness_indicator_file
    if opts.log_level:
        keys["logLevel"] = opts.log_level
    if opts.log_file:
        keys["logFile"] = opts.log_file
    if opts.log_to_stderr is not None:
        keys["logToStderr"] = opts.log_to_stderr
    return keys
