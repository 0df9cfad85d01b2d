"""Shared fixtures: the installed executables, a runner for them, throw-away namespaces."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycni.cni.install import install
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns, create_netns, delete_netns


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every plugin type installed by `pycni install` into a fresh bin directory."""
    path = tmp_path_factory.mktemp("cni-bin")
    install(path)
    return path


@pytest.fixture
def cni(bin_dir: Path) -> Runner:
    return Runner(bin_dir)


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
