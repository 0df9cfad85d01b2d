"""Fixtures for host-device tests: a node netns with its own state dir, sysfs root and IPAM stand-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.host_device.helpers import Node, install_ipam_stand_in


@pytest.fixture
def node(make_netns: Callable[..., Netns], cni: Runner, bin_dir: Path, tmp_path: Path) -> Node:
    ipam_bin = install_ipam_stand_in(tmp_path)
    env = {
        "CNI_PATH": f"{bin_dir}:{ipam_bin}",
        "PYCNI_STATE_DIR": str(tmp_path / "state"),
        "PYCNI_RUN_DIR": str(tmp_path / "run"),
        "PYCNI_SYSFS_ROOT": str(tmp_path / "sys"),
    }
    (tmp_path / "sys").mkdir()
    return Node(make_netns("hdn"), make_netns("hds"), lambda: make_netns("hdp"), cni, tmp_path, env)
