"""Fixtures for the DRA driver: a node of stand-ins (see tests/dra/node.py) per test, cleaned up
after it, even on failure."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.dra.node import DraNode
from tests.helpers.netns import Netns
from tests.meta_multus.apiserver import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short temp dir: unix socket paths must stay under 108 bytes."""
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    path = Path(tempfile.mkdtemp(prefix="dra", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dnode(workdir: Path, make_netns: Callable[..., Netns], pki: Pki) -> Iterator[DraNode]:
    """The node with the kubelet stand-in watching; the test starts the driver."""
    node = DraNode.make(workdir, make_netns("dra"), pki)
    node.kubelet.start()
    try:
        yield node
    finally:
        for log in sorted(workdir.glob("driver-*.log")):  # shown by pytest for a failed test only
            print(f"--- {log.name} (last lines)", *log.read_text().splitlines()[-40:], sep="\n")
        node.close()
