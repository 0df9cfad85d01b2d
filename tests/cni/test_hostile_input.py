"""Hostile input to the runner: each is a spec error with the right code, never a traceback.

Every case runs in-process through the runner, and the ones that used to crash an executable
also through the installed host-local (it touches no kernel state, only its dataDir), run
directly and through the daemon, with the Python launcher and the native forwarder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni.cni import strict_json
from pycni.cni.errors import DecodingFailure, InvalidConfig
from pycni.cni.runtime import CNI_VARS
from pycni.plugins.host_device.config import HostDeviceConf
from tests.cni.test_skel import call, conf
from tests.helpers.cni import Outcome, Runner


def nested(depth: int) -> str:
    """A JSON value nested `depth` arrays deep."""
    return "[" * depth + "]" * depth


def with_value(value: str, key: str = "x", **extra: Any) -> bytes:
    """The echo config with `value` (raw JSON text) under `key`."""
    text = json.dumps(conf(**extra))
    return (text[:-1] + f', "{key}": {value}}}').encode()


# 1. Nesting depth --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["x", "prevResult", "ipam"])
@pytest.mark.parametrize("depth", [strict_json.MAX_DEPTH, 1_000, 100_000])
def test_deep_nesting_is_a_decoding_error(key: str, depth: int) -> None:
    code, out = call(with_value(nested(depth), key))
    assert code != 0
    assert out["code"] == 6 and "nested" in out["msg"], out


def test_nesting_up_to_the_limit_decodes() -> None:
    """The top-level object is one level; a value under it may use the other MAX_DEPTH - 1."""
    inner = nested(strict_json.MAX_DEPTH - 1)
    assert strict_json.loads(f'{{"x": {inner}}}', "test")["x"] is not None
    with pytest.raises(DecodingFailure, match="nested"):
        strict_json.loads(f'{{"x": [{inner}]}}', "test")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"x": "[" * 1000, "y": '\\"{{{{'})
    assert strict_json.nesting_depth(text) == 1
    assert strict_json.loads(text, "test")["x"] == "[" * 1000


# 2. cniVersion types -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
@pytest.mark.parametrize("value", ["true", "1", "1.0", "[]", "{}", '["1.0.0"]'])
def test_a_cni_version_that_is_not_a_string_is_a_decoding_error(command: str, value: str) -> None:
    stdin = json.dumps({"name": "net1", "type": "echo"})[:-1] + f', "cniVersion": {value}}}'
    code, out = call(stdin.encode(), CNI_COMMAND=command)
    assert code != 0
    assert out["code"] == 6 and "cniVersion" in out["msg"], out
    assert "cniVersion" not in out  # an error object carries only a version the config stated


@pytest.mark.parametrize("value", ["[1]", '["1.0.0", true]', '"1.0.0"', "{}", '[["1.0.0"]]'])
def test_cni_versions_must_be_a_list_of_strings(value: str) -> None:
    code, out = call(with_value(value, "cniVersions"))
    assert code != 0
    assert out["code"] == 6 and "cniVersions" in out["msg"], out
    assert out["cniVersion"] == "1.1.0"


@pytest.mark.parametrize("version", ["1.0.²", "1.٣.0", "1.0." + "0" * 5000, "1.0.-0"])
def test_odd_version_strings_are_decoding_errors(version: str) -> None:
    code, out = call(conf(version))
    assert code != 0
    assert out["code"] == 6, out


# 3. NUL and lone surrogates in config strings -----------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "where"),
    [
        (with_value('{"type": "host-local", "dataDir": "/tmp/a\\u0000b"}', "ipam"), "ipam.dataDir"),
        (with_value('["ok", "a\\u0000"]', "list"), "list[1]"),
        (with_value('{"k\\u0000": 1}', "x"), "x.k"),
        (with_value('"\\ud800"', "x"), "x"),
    ],
)
def test_strings_that_no_path_can_hold_are_refused_naming_their_place(stdin: bytes, where: str) -> None:
    code, out = call(stdin)
    assert code != 0
    assert out["code"] == 7 and where in out["msg"], out


# 4. Environment text and interface names ---------------------------------------------------------


@pytest.mark.parametrize("variable", CNI_VARS)
@pytest.mark.parametrize("bad", ["eth\udcff", "a\x00b"])
def test_env_that_is_not_text_is_code_4_naming_the_variable(variable: str, bad: str) -> None:
    code, out = call(conf(), **{"CNI_COMMAND": "DEL", variable: bad})
    assert code != 0
    assert out["code"] == 4 and variable in out["msg"], out


@pytest.mark.parametrize(
    ("ifname", "words"),
    [
        ("é" * 8, "too long"),  # 8 characters, 16 bytes: the kernel counts bytes
        ("x" * 16, "too long"),
        (".", "not allowed"),
        ("a\tb", "whitespace"),
        ("a\u00a0b", "whitespace"),
        ("a:b", "':'"),
    ],
)
def test_interface_names_follow_the_kernels_rules(ifname: str, words: str) -> None:
    code, out = call(conf(), CNI_COMMAND="DEL", CNI_IFNAME=ifname)
    assert code != 0
    assert out["code"] == 4 and words in out["msg"], out


def test_fifteen_bytes_of_ifname_are_fine() -> None:
    code, _ = call(conf(), CNI_COMMAND="DEL", CNI_IFNAME="é" * 7 + "x")
    assert code == 0


# 5. Full matches ---------------------------------------------------------------------------------


@pytest.mark.parametrize("container_id", ["x\n", "x\ny", "\nx", "x "])
def test_container_id_must_match_as_a_whole(container_id: str) -> None:
    code, out = call(conf(), CNI_CONTAINERID=container_id)
    assert code != 0
    assert out["code"] == 4 and "CNI_CONTAINERID" in out["msg"], out


def test_host_device_mac_must_match_as_a_whole() -> None:
    base = {"cniVersion": "1.0.0", "name": "n", "type": "host-device"}
    assert HostDeviceConf.load({**base, "hwaddr": "0a:58:0a:01:02:03"}).hwaddr == "0a:58:0a:01:02:03"
    with pytest.raises(InvalidConfig, match="hwaddr"):
        HostDeviceConf.load({**base, "hwaddr": "0a:58:0a:01:02:03\n"})


# 12. Strict JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_non_finite_numbers_are_decoding_errors(constant: str) -> None:
    code, out = call(with_value(constant, "mtu"))
    assert code != 0
    assert out["code"] == 6, out


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be", "utf-8-sig"])
def test_only_utf8_without_a_bom_is_json(encoding: str) -> None:
    code, out = call(json.dumps(conf()).encode(encoding))
    assert code != 0
    assert out["code"] == 6, out


# The network name --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad name", "a/b", "../etc", ".hidden", "-x", "n\n", "ü", 7, ["n"]])
def test_network_names_are_what_libcni_accepts(name: Any) -> None:
    code, out = call({**conf(), "name": name})
    assert code != 0
    assert out["code"] == 7 and "name" in out["msg"], out


# Unexpected failures: one line, no traceback ------------------------------------------------------


@pytest.fixture
def pycni_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("pycni")
    handler, level = Keep(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_an_unexpected_failure_logs_one_error_line_and_the_traceback_at_debug(
    monkeypatch: pytest.MonkeyPatch, pycni_log: list[logging.LogRecord]
) -> None:
    import tests.helpers.echo_plugin as echo

    def boom(*_: Any) -> None:
        raise ZeroDivisionError("division\nby zero")

    monkeypatch.setattr(echo, "add", boom)
    code, out = call(conf())
    assert code != 0 and out["code"] == 999
    errors = [r for r in pycni_log if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and not errors[0].exc_info
    assert "ZeroDivisionError: division\\nby zero" in errors[0].getMessage()
    assert [r.levelno for r in pycni_log if r.exc_info] == [logging.DEBUG]


# Through an installed executable -----------------------------------------------------------------


@pytest.fixture
def host_local(cni: Runner, tmp_path: Path) -> tuple[Runner, Path]:
    """The installed host-local (run directly and through the daemon, each launcher), with
    private state and data directories."""
    env = {"PYCNI_STATE_DIR": str(tmp_path / "state"), "PYCNI_RUN_DIR": str(tmp_path / "run")}
    return Runner(cni.bin_dir, extra_env={**(cni.extra_env or {}), **env}), tmp_path / "data"


def host_local_conf(data_dir: Path, **extra: Any) -> dict[str, Any]:
    ipam = {"type": "host-local", "dataDir": str(data_dir), "subnet": "10.77.0.0/24"}
    return {"cniVersion": "1.0.0", "name": "hostile", "type": "host-local", "ipam": ipam, **extra}


def refused(out: Outcome, code: int, words: str) -> None:
    assert out.code != 0, out
    assert out.json["code"] == code and words in out.json["msg"], out
    assert "Traceback" not in out.stdout + out.stderr


def test_executable_refuses_hostile_input(host_local: tuple[Runner, Path]) -> None:
    run, data_dir = host_local
    good = json.dumps(host_local_conf(data_dir))

    def add(stdin: bytes | str, **kw: Any) -> Outcome:
        return run("host-local", "ADD", stdin, netns="/run/netns/none", **kw)

    refused(add(good[:-1] + f', "x": {nested(1000)}}}'), 6, "nested")
    refused(add(good[:-1] + f', "prevResult": {{"ips": {nested(1000)}}}}}'), 6, "nested")
    for value in ("true", "1", "1.0", "[]", "{}"):
        refused(add(good.replace('"1.0.0"', value, 1)), 6, "cniVersion")
        refused(run("host-local", "DEL", good.replace('"1.0.0"', value, 1)), 6, "cniVersion")
    refused(add(good.replace("/data", "/da\\u0000ta")), 7, "ipam.dataDir")
    refused(add(good, ifname="eth\udcff"), 4, "CNI_IFNAME")
    refused(add(good, ifname="é" * 8), 4, "CNI_IFNAME")
    refused(add(good, container_id="x\n"), 4, "CNI_CONTAINERID")
    refused(add(good, cni_args="IP=10.77.0.9\udcff"), 4, "CNI_ARGS")
    refused(add(good[:-1] + ', "mtu": NaN}'), 6, "NaN")
    refused(add(good.encode("utf-16")), 6, "UTF-8")
    refused(add(good.encode("utf-8-sig")), 6, "byte-order mark")
    refused(add(good.replace('"hostile"', '"../hostile"')), 7, "name")
    assert not data_dir.exists() or not any(data_dir.rglob("*")), "a refused ADD wrote to the dataDir"
    # and the same config, clean, works: the checks refuse only what is hostile
    assert add(good, container_id="ok-1").ok()["ips"][0]["address"].startswith("10.77.0.")
    assert run("host-local", "DEL", good, container_id="ok-1").code == 0


def test_in_process_delegates_get_the_same_text_checks() -> None:
    """A delegate config never passes the runner's stdin checks: `invoke` makes its own."""
    from pycni.cni.plugin import Context
    from pycni.cni.runtime import Command, RuntimeArgs
    from pycni.cni.settings import Settings
    from pycni.cni.skel import invoke
    from tests.cni.test_skel import ECHO
    from tests.helpers.delegates import RecordingDelegate

    rt = RuntimeArgs(Command.ADD, "ctr-1", "/run/netns/none", "eth0")
    ctx = Context(RecordingDelegate(), Settings())
    with pytest.raises(InvalidConfig, match=r"ipam\.dataDir"):
        invoke(ECHO, rt, {**conf(), "ipam": {"type": "x", "dataDir": "/a\x00"}}, "1.1.0", ctx)
