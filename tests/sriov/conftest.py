"""Fixtures for sriov tests: a simulated SR-IOV node (see helpers.py) per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.sriov.helpers import SriovNode, make_node


@pytest.fixture
def node(make_netns: Callable[..., Netns], cni: Runner, bin_dir: Path, tmp_path: Path) -> SriovNode:
    return make_node(make_netns, cni, bin_dir, tmp_path)
