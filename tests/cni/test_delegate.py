"""Delegation: our own types in-process, foreign ones by exec on CNI_PATH."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from pycni import registry
from pycni.cni.errors import CNIError
from pycni.cni.plugin import PluginRef
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.settings import Settings
from pycni.libcni import delegate
from tests.helpers.delegates import RecordingDelegate

ECHO = PluginRef("echo", "tests.helpers.echo_plugin:EchoConf", "tests.helpers.echo_plugin")

STAND_IN = """#!{python}
import json, os, sys
conf = json.load(sys.stdin)
with open({record!r}, "a") as f:
    f.write(json.dumps({{"cmd": os.environ["CNI_COMMAND"], "cid": os.environ.get("CNI_CONTAINERID"),
                        "ifname": os.environ.get("CNI_IFNAME"), "args": os.environ.get("CNI_ARGS"),
                        "name": conf["name"]}}) + "\\n")
if conf.get("failWith"):
    err = {{"cniVersion": conf["cniVersion"], "code": conf["failWith"], "msg": "stand-in refused"}}
    print(json.dumps(err))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    print(json.dumps({{"cniVersion": "0.2.0", "ip4": {{"ip": "10.1.2.3/24", "gateway": "10.1.2.1"}}}}))
"""


@pytest.fixture
def stand_in(tmp_path: Path) -> tuple[Path, Path]:
    """A foreign plugin executable named `fake-ipam` that records how it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls.jsonl"
    exe = bin_dir / "fake-ipam"
    exe.write_text(STAND_IN.format(python=sys.executable, record=str(record)))
    exe.chmod(0o755)
    return bin_dir, record


def rt(bin_dir: Path, command: Command = Command.ADD) -> RuntimeArgs:
    return RuntimeArgs(command, "cid1", "/run/netns/x", "eth1", (("K", "V"),), (str(bin_dir),), {})


def test_exec_delegate_passes_spec_env_and_upgrades_the_result(stand_in: tuple[Path, Path]) -> None:
    bin_dir, record = stand_in
    conf = {"cniVersion": "0.2.0", "name": "n1", "type": "x", "ipam": {"type": "fake-ipam"}}
    result = delegate.add(delegate.AutoDelegate(registry.lookup, Settings()), "fake-ipam", conf, rt(bin_dir))
    assert str(result.ips[0].address) == "10.1.2.3/24"
    assert str(result.ips[0].gateway) == "10.1.2.1"
    call = json.loads(record.read_text())
    assert call == {"cmd": "ADD", "cid": "cid1", "ifname": "eth1", "args": "K=V", "name": "n1"}


def test_exec_delegate_relays_the_plugins_own_error(stand_in: tuple[Path, Path]) -> None:
    bin_dir, _ = stand_in
    conf = {"cniVersion": "1.0.0", "name": "n1", "failWith": 11}
    with pytest.raises(CNIError) as info:
        delegate.add(delegate.ExecDelegate(), "fake-ipam", conf, rt(bin_dir))
    assert info.value.code == 11 and info.value.msg == "stand-in refused"


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CNIError, match="failed to find plugin 'nope'"):
        delegate.add(delegate.ExecDelegate(), "nope", {"cniVersion": "1.0.0", "name": "n"}, rt(tmp_path))


def test_in_process_delegate_runs_our_type_without_a_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(registry.PLUGINS, "echo", ECHO)
    record = tmp_path / "rec"
    conf = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "echo",
        "address": "10.5.0.9/16",
        "record": str(record),
    }
    auto = delegate.AutoDelegate(registry.lookup, Settings())
    monkeypatch.setattr(auto.exec, "call", lambda *a: pytest.fail("must not exec our own plugin"))
    result = delegate.add(auto, "echo", conf, rt(tmp_path))
    assert str(result.ips[0].address) == "10.5.0.9/16"
    delegate.delete(auto, "echo", conf, rt(tmp_path))
    assert record.read_text().split("\n")[:2] == ["ADD cid1 eth1", "DEL cid1 eth1"]


def test_in_process_delegate_keeps_spec_semantics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(registry.PLUGINS, "echo", ECHO)
    with pytest.raises(CNIError) as info:
        delegate.check(
            delegate.InProcessDelegate(registry.lookup, Settings()),
            "echo",
            {"cniVersion": "0.3.1", "name": "n"},
            rt(tmp_path),
        )
    assert info.value.code == 1
    with pytest.raises(CNIError) as info:
        delegate.add(
            delegate.InProcessDelegate(registry.lookup, Settings()),
            "echo",
            {"cniVersion": "1.0.0", "name": "bad name"},
            rt(tmp_path),
        )
    assert info.value.code == 7


def test_failed_step_after_delegate_add_calls_its_del() -> None:
    rec = RecordingDelegate()
    conf = {"cniVersion": "1.0.0", "name": "n"}
    with pytest.raises(RuntimeError), ExitStack() as undo:
        delegate.add_with_undo(undo, rec, "ipam", conf, rt(Path("/")))
        raise RuntimeError("a later step failed")
    assert rec.commands() == [("ipam", Command.ADD), ("ipam", Command.DEL)]


def test_failed_delegate_add_is_deleted_too() -> None:
    rec = RecordingDelegate(fail={("ipam", Command.ADD)})
    with pytest.raises(CNIError), ExitStack() as undo:
        delegate.add_with_undo(undo, rec, "ipam", {"cniVersion": "1.0.0", "name": "n"}, rt(Path("/")))
    assert rec.commands() == [("ipam", Command.ADD), ("ipam", Command.DEL)]


def test_successful_add_keeps_the_delegate_allocation() -> None:
    rec = RecordingDelegate()
    with ExitStack() as undo:
        delegate.add_with_undo(undo, rec, "ipam", {"cniVersion": "1.0.0", "name": "n"}, rt(Path("/")))
        undo.pop_all()
    assert rec.commands() == [("ipam", Command.ADD)]


@pytest.mark.parametrize(
    ("stdout", "code"),
    [
        ("[" * 5000 + "]" * 5000, 6),  # a result nested without bound
        ('{"cniVersion": "1.0.0", "ips": [], "x": NaN}', 6),
        ("\ufeff{}", 6),
    ],
)
def test_a_foreign_delegates_hostile_result_is_a_decoding_error(
    tmp_path: Path, stdout: str, code: int
) -> None:
    exe = tmp_path / "hostile"
    exe.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\n")
    exe.chmod(0o755)
    with pytest.raises(CNIError) as info:
        delegate.add(delegate.ExecDelegate(), "hostile", {"cniVersion": "1.0.0", "name": "n"}, rt(tmp_path))
    assert info.value.code == code, info.value.msg


def test_a_foreign_delegates_hostile_error_output_is_reported_not_raised(tmp_path: Path) -> None:
    exe = tmp_path / "hostile"
    exe.write_text("#!/bin/sh\nprintf '%s' '" + "[" * 5000 + "]" * 5000 + "'\nexit 1\n")
    exe.chmod(0o755)
    with pytest.raises(CNIError) as info:
        delegate.add(delegate.ExecDelegate(), "hostile", {"cniVersion": "1.0.0", "name": "n"}, rt(tmp_path))
    assert info.value.code == 999 and "failed (exit 1)" in info.value.msg
