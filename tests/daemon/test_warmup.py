"""The supervisor's warm-up: real requests in scratch namespaces, leaving nothing behind."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pycni.cni.runtime import OWN_NETNS
from pycni.daemon import warmup
from pycni.daemon.cli import main
from pycni.daemon.worker import Outcome
from pycni.net import netns
from tests.daemon.process import REPO
from tests.helpers.netns import Netns, sh


def _links(ns: Netns) -> list[str]:
    return sh("ip", "-n", ns.name, "-o", "link", "show").splitlines()


def _own_netns() -> int:
    return os.stat(OWN_NETNS).st_ino


@pytest.mark.usefixtures("warmable")
def test_warm_up_runs_pods_and_leaves_nothing(
    make_netns: Callable[..., Netns], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request answers as it should; the caller's netns, fds and temp dir are as before."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    node = make_netns("pwu")
    before = _links(node)
    with netns.entered(node.path):
        inside = _own_netns()
        gc.collect()  # earlier tests' garbage may hold fds: not the warm-up's to close
        fds = sorted(os.listdir("/proc/self/fd"))
        assert warmup.warm_up(2) is True
        assert _own_netns() == inside
        assert sorted(os.listdir("/proc/self/fd")) == fds
    assert _links(node) == before
    assert list(tmp_path.iterdir()) == []


def test_a_failed_warm_up_is_logged_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A request that fails stops the warm-up; the daemon is told why and serves cold."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(warmup, "run_as_caller", lambda *_: Outcome(1, '{"code": 999}', [], 0.0))
    home = _own_netns()
    with caplog.at_level(logging.WARNING, logger="pycni.daemon"):
        assert warmup.warm_up(1) is False
    assert "warm-up skipped" in caplog.text and "bridge ADD exited 1" in caplog.text
    assert _own_netns() == home
    assert list(tmp_path.iterdir()) == []
    assert logging.root.manager.disable == logging.NOTSET  # the requests' silence is lifted


SPECIALISED = """
import dis, sys
from pycni.daemon.preload import preload
from pycni.plugins.bridge import plugin

def specialised() -> int:
    ops = dis.get_instructions(plugin.add, adaptive=True)
    # specialised, not merely quickened: `*_ADAPTIVE` still waits for its first specialisation
    return sum(op.opname not in dis.opmap and not op.opname.endswith("_ADAPTIVE") for op in ops)

preload(int(sys.argv[1]))
print(specialised())
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="bytecode is specialised in place from CPython 3.11")
@pytest.mark.parametrize("cycles", [0, 8])
@pytest.mark.usefixtures("warmable")
def test_warm_up_specialises_the_bytecode_before_the_fork(cycles: int) -> None:
    """What the warm-up is for: the bridge's ADD leaves preload already specialised, or not."""
    out = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", SPECIALISED, str(cycles)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (int(out) > 0) == (cycles > 0), out


def test_a_negative_warm_up_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--warm-up", "-1"]) == 2
    assert "--warm-up >= 0" in capsys.readouterr().err


def test_the_warm_up_loads_no_kernel_module(tmp_path: Path) -> None:
    """A module neither loaded nor built in keeps the warm-up from running; none to load, it runs."""
    proc_modules, builtin = tmp_path / "modules", tmp_path / "modules.builtin"
    assert warmup.modules_not_loaded(proc_modules, builtin) == []  # no module support at all
    proc_modules.write_text("bridge 290816 0 - Live 0x0\nstp 12288 1 bridge, Live 0x0\n")
    assert warmup.modules_not_loaded(proc_modules, builtin) == ["veth"]
    builtin.write_text("kernel/drivers/net/veth.ko\n")
    assert warmup.modules_not_loaded(proc_modules, builtin) == []
    proc_modules.write_text("")
    assert warmup.modules_not_loaded(proc_modules, builtin) == ["bridge"]


def test_no_warm_up_when_it_would_load_a_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "modules").write_text("")
    monkeypatch.setattr(warmup, "PROC_MODULES", tmp_path / "modules")
    monkeypatch.setattr(warmup, "_scratch", lambda: pytest.fail("no namespace may be made"))
    assert warmup.warm_up(1) is False
