"""Fixtures for the end-to-end tests under real runtimes: containerd's CRI and podman.

Each test gets a throw-away node netns and a runtime started inside it with private state,
and removes both at the end, also on failure. Two plugin sets run the same scenarios: ours
(the installed native executables, served by a `pycni daemon`) and the Go reference plugins
from Debian (`/usr/lib/cni`), the control. Timings go into a table printed after the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pycni.install import install
from tests.daemon.process import DaemonProcess, start_daemon
from tests.e2e import images
from tests.e2e.containerd import Containerd
from tests.e2e.cri import generate_stubs
from tests.e2e.leftovers import Node
from tests.e2e.podman import Podman
from tests.helpers.netns import Netns, create_netns, delete_netns
from tests.helpers.timings import Timings

REFERENCE_BIN = Path("/usr/lib/cni")
#: What containerd's single bin_dir must hold besides the conflist's types: it always runs
#: `loopback`; `portmap` is in its example conflist. Taken from the reference plugins.
RUNTIME_EXTRAS = ("loopback", "portmap")
PLUGIN_SETS = ("pycni", "reference")


def _missing_tools() -> list[str]:
    tools = ("containerd", "ctr", "runc", "podman", "conmon", "busybox", "nsenter", "unshare")
    return [t for t in tools if shutil.which(t) is None] + [
        str(REFERENCE_BIN / t)
        for t in ("bridge", "host-local", *RUNTIME_EXTRAS)
        if not (REFERENCE_BIN / t).exists()
    ]


@pytest.fixture(autouse=True)
def _runtimes_here() -> None:
    if os.geteuid() != 0:
        pytest.skip("the container runtimes run as root")
    missing = _missing_tools()
    if missing:
        pytest.skip(f"not installed (scripts/setup.sh installs them): {', '.join(missing)}")


@pytest.fixture(scope="session")
def cri_stubs(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    return generate_stubs(tmp_path_factory.mktemp("cri-stubs"))


@pytest.fixture(scope="session")
def pause_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.e2e.containerd import SANDBOX_IMAGE

    return images.pause_image(tmp_path_factory.mktemp("images") / "pause.tar", SANDBOX_IMAGE)


@pytest.fixture(scope="session")
def pycni_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our executables (native forwarders) plus what a runtime's bin dir needs from the reference."""
    path = tmp_path_factory.mktemp("e2e-bin")
    install(path, launcher="native")
    for name in RUNTIME_EXTRAS:
        shutil.copy2(REFERENCE_BIN / name, path / name)
    return path


@pytest.fixture(scope="session")
def e2e_daemon() -> Iterator[DaemonProcess]:
    """The node daemon that serves our executables in these tests (its own socket)."""
    sock_dir = Path(tempfile.mkdtemp(prefix="pce"))
    daemon = start_daemon(sock_dir, probe=False)
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture
def timings() -> Timings:
    return Timings.of_this_run()


@dataclass
class E2eNode:
    """A node netns with its private plugin dirs, and how to reach them per plugin set."""

    ns: Netns
    work: Path

    @property
    def ipam_dir(self) -> Path:
        return self.work / "ipam"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def multus_dir(self) -> Path:
        return self.work / "multus"

    @property
    def leftovers(self) -> Node:
        return Node(self.ns, self.ipam_dir, self.run_dir, self.multus_dir)

    def plugin_env(self, daemon: DaemonProcess | None) -> dict[str, str]:
        """What our executables get from the runtime's environment: private dirs and the daemon."""
        env = {"PYCNI_RUN_DIR": str(self.run_dir), "PYCNI_STATE_DIR": str(self.work / "state")}
        if daemon is not None:
            env["PYCNI_DAEMON_SOCKET"] = str(daemon.socket)
        return env

    def bridge_conflist(
        self, name: str, bridge: str, subnet: str, cni_version: str = "1.0.0"
    ) -> dict[str, Any]:
        return {
            "cniVersion": cni_version,
            "name": name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.ipam_dir),
                        "ranges": [[{"subnet": subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                }
            ],
        }


@pytest.fixture
def e2e_node() -> Iterator[E2eNode]:
    ns = create_netns("e2en")
    work = Path(tempfile.mkdtemp(prefix="pcn"))
    try:
        yield E2eNode(ns, work)
    finally:
        delete_netns(ns)
        shutil.rmtree(work, ignore_errors=True)


MakeContainerd = Callable[..., Containerd]


@pytest.fixture
def make_containerd(
    e2e_node: E2eNode,
    cri_stubs: tuple[ModuleType, ModuleType],
    pause_image: Path,
    pycni_bin: Path,
) -> Iterator[MakeContainerd]:
    """containerd in the node, with our bin dir or the reference's; cleaned up after the test."""
    started: list[Containerd] = []

    def make(
        plugins: str, *, netns_under_state: bool = False, env: dict[str, str] | None = None
    ) -> Containerd:
        work = Path(tempfile.mkdtemp(prefix="pcc"))  # short: socket paths are limited to 108 bytes
        conf_dir = work / "net.d"
        conf_dir.mkdir()
        ctd = Containerd(
            work=work,
            node=e2e_node.ns,
            bin_dir=pycni_bin if plugins == "pycni" else REFERENCE_BIN,
            conf_dir=conf_dir,
            stubs=cri_stubs,
            netns_under_state=netns_under_state,
            env=env or {},
        )
        started.append(ctd)
        ctd.start()
        ctd.import_image(pause_image)
        return ctd

    try:
        yield make
    finally:
        for ctd in started:
            ctd.cleanup()
            shutil.rmtree(ctd.work, ignore_errors=True)


def in_netns(path: str, *cmd: str) -> str:
    """Run `cmd` in the netns at `path` (a pod's, wherever its runtime put it)."""
    proc = subprocess.run(["nsenter", f"--net={path}", *cmd], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} in {path} failed: {proc.stderr.strip()}")
    return proc.stdout


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return images.busybox_image(tmp_path_factory.mktemp("images") / "busybox.tar", BUSYBOX_IMAGE)


BUSYBOX_IMAGE = "localhost/pycni/busybox:e2e"
MakePodman = Callable[[str], Podman]


@pytest.fixture
def make_podman(e2e_node: E2eNode, busybox_image: Path, pycni_bin: Path) -> Iterator[MakePodman]:
    """podman in the node: our bin dir first on `cni_plugin_dirs` (then the reference), or the
    reference alone; cleaned up after the test."""
    started: list[Podman] = []

    def make(plugins: str) -> Podman:
        dirs = (pycni_bin, REFERENCE_BIN) if plugins == "pycni" else (REFERENCE_BIN,)
        podman = Podman(Path(tempfile.mkdtemp(prefix="pcp")), e2e_node.ns, dirs)
        started.append(podman)
        podman.write_config()
        podman("load", "--input", str(busybox_image))
        return podman

    try:
        yield make
    finally:
        for podman in started:
            podman.cleanup()
            shutil.rmtree(podman.work, ignore_errors=True)
