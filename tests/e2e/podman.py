"""podman 4.3 with its CNI backend, run by the tests inside a node netns, with private storage.

Its configuration comes from files in its work dir (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`):
cgroupfs, runc, the file events logger, this VM's ulimits, `network_backend = "cni"` with the
given `cni_plugin_dirs` (a search list: the first dir holding a type wins) and a private
network config dir. Some of its DELs run from conmon's `podman container cleanup`, whose
environment is stripped: our executables get no `PYCNI_*` there and use their defaults.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns
from tests.helpers.poll import wait_until


@dataclass
class Podman:
    work: Path
    node: Netns
    plugin_dirs: tuple[Path, ...]

    def write_config(self) -> None:
        for sub in ("root", "runroot", "tmp", "volumes", "net.d"):
            (self.work / sub).mkdir(parents=True, exist_ok=True)
        dirs = ", ".join(f'"{d}"' for d in self.plugin_dirs)
        (self.work / "containers.conf").write_text(
            f"""[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "bridge"
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "{self.work / "tmp"}"
volume_path = "{self.work / "volumes"}"
[network]
network_backend = "cni"
cni_plugin_dirs = [{dirs}]
network_config_dir = "{self.work / "net.d"}"
"""
        )
        (self.work / "storage.conf").write_text(
            f"""[storage]
driver = "overlay"
graphroot = "{self.work / "root"}"
runroot = "{self.work / "runroot"}"
"""
        )

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CONTAINERS_CONF": str(self.work / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.work / "storage.conf"),
        }

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        proc = subprocess.run(
            ["nsenter", f"--net={self.node.path}", "podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def inspect(self, container: str) -> dict[str, Any]:
        (found,) = json.loads(self("inspect", container))
        return dict(found)

    def address(self, container: str, network: str) -> str:
        return str(self.inspect(container)["NetworkSettings"]["Networks"][network]["IPAddress"])

    def cleanup(self) -> None:
        """Remove every container, network and image, then reap conmons and mounts it left."""
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            self("rm", "--all", "--force", "--time", "0", check=False)
            self("network", "prune", "--force", check=False)
            self("system", "reset", "--force", check=False)
        for pid in self.conmons():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.conmons(), timeout=30.0, what="podman's conmons to exit")
        prefix = str(self.work) + "/"
        points = [
            line.split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(prefix)
        ]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    def conmons(self) -> list[int]:
        """conmon processes of this podman (their arguments name its private dirs)."""
        mine = []
        marker = str(self.work).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if argv.startswith(b"/usr/bin/conmon") and marker in argv:
                mine.append(int(entry.name))
        return mine
