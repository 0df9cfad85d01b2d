"""What the command line decides for the device-plugin service: paths, and which event sources to open.

A module of its own so that both the service and its event sources (`watch`) can depend on it
without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pycni.device_plugin.cdi import CDI_DIR
from pycni.hw.devinfo import DP_DIR
from pycni.k8s.paths import DEVICE_PLUGINS_DIR, PLUGINS_REGISTRY_DIR, POD_RESOURCES_SOCKET
from pycni.k8s.pools.config import DEFAULT_PREFIX


@dataclass(frozen=True)
class Options:
    """Every path is a field so tests can point the service at temp directories and a fake sysfs."""

    config_path: Path
    resource_prefix: str = DEFAULT_PREFIX
    sysfs_root: Path = Path("/sys")
    kubelet_dir: Path = DEVICE_PLUGINS_DIR
    plugins_registry_dir: Path = PLUGINS_REGISTRY_DIR
    devinfo_dir: Path = DP_DIR
    cdi_dir: Path = CDI_DIR
    use_cdi: bool = False
    #: The kubelet's pod-resources API, read at start for the devices pods already hold (None: not read).
    pod_resources_socket: Path | None = POD_RESOURCES_SOCKET
    #: The network namespace whose links are the node's netdevs (None: our own).
    links_netns: str | None = None
    use_netlink: bool = True
    use_udev: bool = True
    #: How long a burst of events is coalesced before one reconcile pass.
    debounce: float = 0.02
