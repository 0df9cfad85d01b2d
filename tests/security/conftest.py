"""Fixtures for the security checks: a directory tree the plugins may write in only in given
places, a runner for the installed executables, and a marker executable that records being run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns

# the multus node and the SR-IOV flow's kubelet, for the lifecycles of test_modes
from tests.meta_multus.conftest import mnode, pki  # noqa: F401
from tests.meta_multus.test_device_flow import kubelet  # noqa: F401

MARKER = """#!/bin/sh
echo "$0 $CNI_COMMAND" >> "{ran}"
"""


@dataclass
class Jail:
    """`root` with the directories a request may write in (`allowed`); everything else under
    `top` (three levels up, so `../../..` from a directory in the jail still lands in it) must
    stay as it was."""

    top: Path
    root: Path
    allowed: list[Path] = field(default_factory=list)
    _before: set[Path] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.marker = self.root / "marker"
        self.ran = self.root / "marker-ran"
        self.marker.write_text(MARKER.format(ran=self.ran))
        self.marker.chmod(0o755)
        self._before = self._walk()

    def dir(self, *parts: str) -> Path:
        """A path under the jail a plugin is allowed to write in (not created: the plugin does)."""
        path = self.root.joinpath(*parts)
        self.allowed.append(path)
        return path

    def settle(self) -> None:
        """Take what the test itself wrote (manifests, fake trees) as the starting point."""
        self._before = self._walk()

    def _walk(self) -> set[Path]:
        return {Path(d) / n for d, dirs, files in os.walk(self.top) for n in (*dirs, *files)}

    def escaped(self) -> list[str]:
        """What appeared outside the allowed directories, in the jail or above it."""
        new = self._walk() - self._before
        return sorted(str(p) for p in new if not any(p == a or p.is_relative_to(a) for a in self.allowed))

    def named(self, names: Iterable[str]) -> list[str]:
        """Paths in the allowed directories named like one of `names` (a hostile name's last part)."""
        wanted = set(names)
        return sorted(str(p) for p in self._walk() - self._before if p.name in wanted)


@pytest.fixture
def jail(tmp_path: Path) -> Jail:
    root = tmp_path / "a" / "b" / "jail"
    root.mkdir(parents=True)
    return Jail(tmp_path, root)


@pytest.fixture
def direct(bin_dir: Path) -> Runner:
    """The installed Python launchers, each request run by the executable itself."""
    return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"})


@pytest.fixture
def pod(make_netns: Callable[..., Netns]) -> Netns:
    return make_netns("sec")
