"""The image's content, built by its own build script into a temporary root: the CLI, the
daemon, the device plugin and the forwarders the installer copies to nodes all work from it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.install import is_ours
from pycni.registry import PLUGINS
from tests.helpers.poll import wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "image" / "build-root.sh"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("image-root")
    python = os.path.realpath(sys.executable)  # the base interpreter, as the image's python3
    base = subprocess.run([python, "-c", "import sys; print(sys.base_prefix)"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    proc = subprocess.run(
        ["bash", str(BUILD), str(path), str(REPO)],
        env={**os.environ, "PYTHON": str(Path(base) / "bin" / "python3")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


def pycni(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "opt/pycni/venv/bin/pycni"), *args], capture_output=True, text=True, check=False
    )


def test_pycni_install_works_from_the_tree(root: Path, tmp_path: Path) -> None:
    proc = pycni(root, "install", "--bin-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(PLUGINS)


def test_device_plugin_help_works_from_the_tree(root: Path) -> None:
    proc = pycni(root, "device-plugin", "--help")
    assert proc.returncode == 0 and "--metrics-address" in proc.stdout


@pytest.fixture
def daemon(root: Path) -> Iterator[Path]:
    sock_dir = Path(tempfile.mkdtemp(prefix="pci"))
    sock = sock_dir / "d.sock"
    proc = subprocess.Popen(
        [str(root / "opt/pycni/venv/bin/pycni"), "daemon", "--socket", str(sock), "--workers", "1",
         "--metrics-address=127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: pycni(root, "daemon", "--status", "--socket", str(sock)).returncode == 0,
                   timeout=60, what="the daemon from the tree")  # fmt: skip
        yield sock
    finally:
        proc.terminate()
        proc.wait(60)
        sock.unlink(missing_ok=True)
        sock_dir.rmdir()


def test_daemon_status_works_from_the_tree(root: Path, daemon: Path) -> None:
    proc = pycni(root, "daemon", "--status", "--socket", str(daemon))
    assert proc.returncode == 0 and '"workers": 1' in proc.stdout


def test_the_forwarders_are_static_daemon_only_and_served_by_the_daemon(root: Path, daemon: Path) -> None:
    forwarders = root / "opt/pycni/forwarders"
    assert sorted(p.name for p in forwarders.iterdir()) == sorted(PLUGINS)  # no Python fallbacks
    for path in forwarders.iterdir():
        assert is_ours(path) and path.read_bytes()[:4] == b"\x7fELF"
    env = {"CNI_COMMAND": "VERSION", "PYCNI_DAEMON_SOCKET": str(daemon), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(forwarders / "bridge")], input=b'{"cniVersion":"1.0.0"}', env=env,
                         capture_output=True, check=False)  # fmt: skip
    assert out.returncode == 0 and b'"supportedVersions"' in out.stdout
    down = subprocess.run([str(forwarders / "bridge")], input=b'{"cniVersion":"1.0.0"}',
                          env={**env, "PYCNI_DAEMON_SOCKET": str(daemon) + ".gone"}, capture_output=True,
                          check=False)  # fmt: skip
    assert down.returncode == 1 and b'"code":11' in down.stdout
