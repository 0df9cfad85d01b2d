"""Fixtures for the daemon tests: short socket directories, probe daemons, launchers."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycni.install import install
from tests.daemon.process import DaemonProcess, install_probe, start_daemon
from tests.helpers.cni import Runner


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("the daemon serves root only")


@pytest.fixture(scope="session", params=["python", "native"])
def daemon_bin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed executables plus one for the probe type: Python launchers, or native forwarders.

    Every daemon test runs with both kinds: they speak the same protocol and keep the same rules.
    """
    path = tmp_path_factory.mktemp(f"daemon-bin-{request.param}")
    install(path, launcher=request.param)
    install_probe(path, native=request.param == "native")
    return path


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A fresh 0700 directory with a short path (socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="pcd"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start(sock_dir: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start probe daemons in `sock_dir`; all are stopped after the test, even on failure."""
    started: list[DaemonProcess] = []

    def make(*args: str, name: str = "d.sock") -> DaemonProcess:
        daemon = start_daemon(sock_dir, *args, name=name)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


@pytest.fixture
def daemon(start: Callable[..., DaemonProcess]) -> DaemonProcess:
    return start("--workers", "2")


@pytest.fixture
def record(tmp_path: Path) -> Path:
    return tmp_path / "record"


def runner(bin_dir: Path, **env: str) -> Runner:
    return Runner(bin_dir, extra_env=env)


@pytest.fixture
def warmable() -> None:
    """The daemon's warm-up can run here: it never loads a kernel module to make its links."""
    from pycni.daemon.warmup import missing_modules

    missing = missing_modules()
    if missing:
        pytest.skip(f"the warm-up would load kernel modules this kernel has not loaded: {', '.join(missing)}")
