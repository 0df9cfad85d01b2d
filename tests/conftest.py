"""Shared fixtures: the installed executables, a runner for them, throw-away namespaces."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni.install import install
from tests.daemon.process import DaemonProcess, start_daemon
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns, create_netns, delete_netns
from tests.helpers.timings import Timings


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controlling process (or the only one)
        Timings.start_run()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The end-to-end tests' timings beside the reference's (tests/e2e), when any ran."""
    if hasattr(config, "workerinput"):
        return
    timings = Timings.of_this_run()
    if timings.samples():
        terminalreporter.section("pycni vs the Go reference plugins under real runtimes")
        for line in timings.table():
            terminalreporter.write_line(line)
    timings.remove()


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every plugin type installed by `pycni install --launcher python` into a fresh bin directory."""
    path = tmp_path_factory.mktemp("cni-bin")
    install(path, launcher="python")
    return path


@pytest.fixture(scope="session")
def native_bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every plugin type installed as native forwarders (`pycni install --launcher native`)."""
    path = tmp_path_factory.mktemp("cni-bin-native")
    install(path, launcher="native")
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


@pytest.fixture(params=["direct", "daemon", "native-direct", "native-daemon"])
def cni(request: pytest.FixtureRequest) -> Runner:
    """The installed executables, run as plugins themselves or forwarded to a daemon.

    Every test using this runs each way and must get the same results: with the Python
    launchers and with the native forwarders ("native-direct" execs the Python fallback).
    "daemon" modes forbid the fallback, so a daemon that does not take a request fails the test.
    """
    kind, _, mode = request.param.rpartition("-")
    bin_dir: Path = request.getfixturevalue("native_bin_dir" if kind == "native" else "bin_dir")
    if mode == "direct":
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
