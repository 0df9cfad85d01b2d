"""What the command line decides for the DRA driver: its name, its node, the API server, and paths.

Every path is a field so tests point the driver at temp directories and a fake sysfs; the socket,
checkpoint and CDI names derive from them here, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pycni.k8s.apiserver import IN_CLUSTER
from pycni.k8s.paths import PLUGINS_DIR, PLUGINS_REGISTRY_DIR
from pycni.k8s.pools.config import DEFAULT_PREFIX

DEFAULT_DRIVER = "sriov.pycni.io"
#: Where container runtimes look for CDI specs (the CDI default for generated specs).
CDI_DIR = Path("/var/run/cdi")


@dataclass(frozen=True)
class Options:
    config_path: Path
    node_name: str
    driver_name: str = DEFAULT_DRIVER
    kubeconfig: str = IN_CLUSTER
    #: The environment the in-cluster account is read from (KUBERNETES_SERVICE_HOST/PORT).
    env: Mapping[str, str] = field(default_factory=dict)
    resource_prefix: str = DEFAULT_PREFIX
    plugins_dir: Path = PLUGINS_DIR
    registry_dir: Path = PLUGINS_REGISTRY_DIR
    cdi_dir: Path = CDI_DIR
    sysfs_root: Path = Path("/sys")
    #: The network namespace whose links are the node's netdevs (None: our own).
    links_netns: str | None = None
    use_netlink: bool = True
    use_udev: bool = True
    #: How long a burst of events is coalesced before one reconcile pass.
    debounce: float = 0.02

    @property
    def plugin_dir(self) -> Path:
        """The driver's own directory: its service socket, and its state directory."""
        return self.plugins_dir / self.driver_name

    @property
    def plugin_socket(self) -> Path:
        """DRAPlugin and DRAResourceHealth, dialled by kubelet (the endpoint GetInfo names)."""
        return self.plugin_dir / "dra.sock"

    @property
    def registration_socket(self) -> Path:
        """The plugin-watcher registration service, found by kubelet in its registry directory."""
        return self.registry_dir / f"{self.driver_name}-reg.sock"

    def socket_dirs(self) -> list[Path]:
        """Where our sockets live, and the parents in which those directories may be made again."""
        dirs = [self.registry_dir, self.registry_dir.parent, self.plugin_dir, self.plugin_dir.parent]
        return list(dict.fromkeys(d.absolute() for d in dirs))

    def watched_dirs(self) -> list[Path]:
        """What the event loop watches (inotify): the socket directories and the config's."""
        return list(dict.fromkeys([*self.socket_dirs(), self.config_path.parent.absolute()]))

    @property
    def checkpoint_path(self) -> Path:
        """In a directory of its own: the event loop watches `plugin_dir` for its socket, and each
        checkpoint write there (link, exchange, unlink) woke the loop in the middle of a Prepare,
        its thread then contending with the handler's for the interpreter (~1 ms a Prepare)."""
        return self.plugin_dir / "state" / "checkpoint.json"

    @property
    def legacy_checkpoint_path(self) -> Path:
        """Where drivers before the state directory kept it: moved from there once, at start."""
        return self.plugin_dir / "checkpoint.json"
