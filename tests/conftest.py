"""Shared fixtures: the installed executables, a runner for them, throw-away namespaces."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycni.install import install
from tests.daemon.process import DaemonProcess, start_daemon
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns, create_netns, delete_netns


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every plugin type installed by `pycni install` into a fresh bin directory."""
    path = tmp_path_factory.mktemp("cni-bin")
    install(path)
    return path


@pytest.fixture(scope="session")
def cni_daemon() -> Iterator[DaemonProcess]:
    """One `pycni daemon` per test session (per xdist worker), on its own socket."""
    if os.geteuid() != 0:
        pytest.skip("the daemon serves root only")
    sock_dir = Path(tempfile.mkdtemp(prefix="pcd"))
    daemon = start_daemon(sock_dir, probe=False)
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture(params=["direct", "daemon"])
def cni(request: pytest.FixtureRequest, bin_dir: Path) -> Runner:
    """The installed executables, run as plugins themselves or forwarded to a daemon.

    Every test using this runs both ways and must get the same results. "daemon" mode
    forbids the fallback, so a daemon that does not take a request fails the test.
    """
    if request.param == "direct":
        return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"})
    daemon: DaemonProcess = request.getfixturevalue("cni_daemon")
    return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "required", **daemon.env})


@pytest.fixture
def make_netns() -> Iterator[Callable[..., Netns]]:
    """A factory of uniquely named namespaces, all deleted after the test, even on failure."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    created: list[Netns] = []

    def make(prefix: str = "pyt") -> Netns:
        ns = create_netns(prefix)
        created.append(ns)
        return ns

    yield make
    for ns in reversed(created):
        delete_netns(ns)
