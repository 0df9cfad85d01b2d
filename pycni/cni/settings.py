"""The node-level settings one plugin call runs with, read once from its environment.

A request's environment is the caller's (an exec'd plugin's own, or the one the launcher
forwarded to a daemon worker), so the settings are built per call by the runner and carried
by the `Context`; no other module reads `PYCNI_*` variables. Tests set them per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from pycni.cni import env_names as names


class Settings(NamedTuple):
    """Immutable; a NamedTuple rather than a dataclass because every exec'd call builds the class."""

    #: Where plugins keep durable per-attachment state (restore records, allocations).
    state_dir: Path = Path(names.DEFAULT_STATE_DIR)
    #: Where plugins keep runtime-only files: locks, the daemon socket's directory.
    run_dir: Path = Path(names.DEFAULT_RUN_DIR)
    #: The sysfs tree to read; a fake tree in tests.
    sysfs_root: Path = Path(names.DEFAULT_SYSFS_ROOT)
    #: Log to this file instead of stderr.
    log_file: str = ""
    log_level: str = names.DEFAULT_LOG_LEVEL
    daemon_mode: str = names.DEFAULT_DAEMON_MODE
    daemon_socket: str = names.DEFAULT_DAEMON_SOCKET
    #: host-local's crash-test hook (empty in production).
    host_local_crash_at: str = ""
    #: sriov: a JSON file standing in for the PF's VF settings (empty: program the PF over netlink).
    vf_state_file: str = ""
    #: sriov-cni's directory (`<containerID>-<ifname>` caches, `pci/<address>` markers); empty:
    #: `sriov` beside `state_dir`, which is sriov-cni's own /var/lib/cni/sriov on a default node.
    sriov_cni_dir: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The defaults, each overridden by its variable when set and non-empty."""
        return cls(
            state_dir=Path(env.get(names.STATE_DIR) or names.DEFAULT_STATE_DIR),
            run_dir=Path(env.get(names.RUN_DIR) or names.DEFAULT_RUN_DIR),
            sysfs_root=Path(env.get(names.SYSFS_ROOT) or names.DEFAULT_SYSFS_ROOT),
            log_file=env.get(names.LOG_FILE, ""),
            log_level=(env.get(names.LOG_LEVEL) or names.DEFAULT_LOG_LEVEL).upper(),
            daemon_mode=env.get(names.DAEMON_MODE) or names.DEFAULT_DAEMON_MODE,
            daemon_socket=env.get(names.DAEMON_SOCKET) or names.DEFAULT_DAEMON_SOCKET,
            host_local_crash_at=env.get(names.HOST_LOCAL_CRASH_AT, ""),
            vf_state_file=env.get(names.SRIOV_VF_STATE, ""),
            sriov_cni_dir=env.get(names.SRIOV_CNI_DIR, ""),
        )

    @property
    def sriov_dir(self) -> Path:
        return Path(self.sriov_cni_dir) if self.sriov_cni_dir else self.state_dir.parent / "sriov"
