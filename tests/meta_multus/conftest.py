"""Fixtures for multus: a node namespace with an underlay for vxlan, its own dirs and runner."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.meta_multus.apiserver import FakeApiServer, Pki, make_pki
from tests.meta_multus.helpers import MultusNode, install_stub

UNDERLAY_V4 = "192.0.2.1"


@pytest.fixture
def mnode(
    make_netns: Callable[..., Netns], cni: Runner, bin_dir: Path, tmp_path: Path
) -> Iterator[MultusNode]:
    ns = make_netns("mmn")
    ns.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
    ns.run("ip", "addr", "add", f"{UNDERLAY_V4}/24", "dev", "up0")
    ns.run("ip", "link", "set", "up0", "up")
    ns.run("ip", "link", "set", "up0p", "up")
    node = MultusNode(
        ns=ns,
        tmp=tmp_path,
        runner=cni,
        pod_factory=lambda: make_netns("mmp"),
        cni_bin=bin_dir,
        tmp_short=Path(tempfile.mkdtemp(prefix="mm", dir="/tmp")),
        env={
            "CNI_PATH": str(bin_dir),
            "PYCNI_STATE_DIR": str(tmp_path / "state"),
            "PYCNI_RUN_DIR": str(tmp_path / "run"),
            "PYCNI_SYSFS_ROOT": str(tmp_path / "sys"),
        },
    )
    (tmp_path / "sys").mkdir()
    (tmp_path / "net.d").mkdir()
    install_stub(node.stub_bin)
    try:
        yield node
    finally:
        shutil.rmtree(node.tmp_short, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def api(mnode: MultusNode, pki: Pki) -> Iterator[FakeApiServer]:
    """The API server stand-in, serving in the node's netns; stopped after the test."""
    server = FakeApiServer(pki, mnode.ns.path)
    try:
        yield server
    finally:
        server.stop()
