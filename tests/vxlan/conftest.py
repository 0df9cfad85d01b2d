"""Fixtures for the vxlan tests: a three-node cluster on an underlay bridge, rebuilt per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.vxlan.topology import Cluster, build_cluster


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """This test's own lock directory, so nothing is left in /run."""
    path = tmp_path / "run"
    path.mkdir()
    return path


@pytest.fixture
def vx_cni(bin_dir: Path, run_dir: Path) -> Runner:
    return Runner(bin_dir, extra_env={"PYCNI_RUN_DIR": str(run_dir)})


@pytest.fixture
def cluster(make_netns: Callable[..., Netns], vx_cni: Runner, tmp_path: Path) -> Cluster:
    return build_cluster(make_netns, vx_cni, tmp_path / "ipam")
