"""The runner, driven in-process with a dict for env and buffers for stdin/stdout."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from pycni.cni.plugin import Context, PluginRef
from pycni.cni.skel import run
from tests.helpers.cni import ALL_SPEC_VERSIONS, has_check, has_gc
from tests.helpers.delegates import RecordingDelegate

ECHO = PluginRef("echo", "tests.helpers.echo_plugin:EchoConf", "tests.helpers.echo_plugin")

BASE_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "abc123",
    "CNI_NETNS": "/run/netns/none",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


def call(conf: Any, plugin: PluginRef = ECHO, /, **env: str) -> tuple[int, Any]:
    stdin = io.BytesIO(conf if isinstance(conf, bytes) else json.dumps(conf).encode())
    stdout = io.StringIO()
    code = run(plugin, {**BASE_ENV, **env}, stdin, stdout, lambda s: Context(RecordingDelegate(), s))
    text = stdout.getvalue()
    return code, json.loads(text) if text else None


def conf(version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net1", "type": "echo", **extra}


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS)
def test_add_prints_the_result_in_the_requested_version(version: str) -> None:
    code, out = call(conf(version))
    assert code == 0
    assert out["cniVersion"] == version
    if version in ("0.1.0", "0.2.0"):
        assert out["ip4"]["ip"] == "10.9.0.2/24"
    else:
        assert out["ips"][0]["address"] == "10.9.0.2/24"
        assert out["interfaces"][0]["name"] == "eth0"


def test_version_ignores_env_and_echoes_a_supported_version() -> None:
    code, out = call({"cniVersion": "0.4.0"}, CNI_COMMAND="VERSION", CNI_CONTAINERID="")
    assert code == 0
    assert out == {"cniVersion": "0.4.0", "supportedVersions": list(ALL_SPEC_VERSIONS)}
    code, out = call(b"", CNI_COMMAND="VERSION")
    assert out["cniVersion"] == "1.1.0"


@pytest.mark.parametrize(
    ("stdin", "env", "code", "words"),
    [
        (b"{not json", {}, 6, "error parsing"),
        (b"[1]", {}, 6, "JSON object"),
        (json.dumps({"cniVersion": "1.0.0", "type": "echo"}).encode(), {}, 7, "name"),
        (json.dumps(conf("9.9.9")).encode(), {}, 1, "incompatible"),
        (json.dumps(conf("1.x")).encode(), {}, 6, "invalid version"),
        (json.dumps(conf()).encode(), {"CNI_COMMAND": "FROB"}, 4, "unknown CNI_COMMAND"),
        (json.dumps(conf()).encode(), {"CNI_COMMAND": ""}, 4, "CNI_COMMAND"),
        (json.dumps(conf()).encode(), {"CNI_CONTAINERID": ""}, 4, "CNI_CONTAINERID"),
        (json.dumps(conf()).encode(), {"CNI_CONTAINERID": "-bad/id"}, 4, "CNI_CONTAINERID"),
        (json.dumps(conf()).encode(), {"CNI_NETNS": ""}, 4, "CNI_NETNS"),
        (json.dumps(conf()).encode(), {"CNI_IFNAME": "x" * 16}, 4, "too long"),
        (json.dumps(conf()).encode(), {"CNI_IFNAME": "a/b"}, 4, "'/'"),
        (json.dumps(conf()).encode(), {"CNI_IFNAME": "a b"}, 4, "whitespace"),
        (json.dumps(conf()).encode(), {"CNI_IFNAME": ".."}, 4, "not allowed"),
        (json.dumps(conf()).encode(), {"CNI_ARGS": "nokey"}, 4, "CNI_ARGS"),
        (json.dumps(conf(address="300.1.1.1/24")).encode(), {}, 7, "address"),
        (json.dumps(conf(fail_on=["ADD"])).encode(), {}, 100, "told to fail"),
    ],
)
def test_errors_are_spec_objects(stdin: bytes, env: dict[str, str], code: int, words: str) -> None:
    rc, out = call(stdin, **env)
    assert rc != 0
    assert out["code"] == code
    assert words in out["msg"]


def test_del_needs_no_netns() -> None:
    code, out = call(conf(), CNI_COMMAND="DEL", CNI_NETNS="")
    assert (code, out) == (0, None)


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS)
def test_check_needs_040(version: str) -> None:
    code, out = call(conf(version), CNI_COMMAND="CHECK")
    if has_check(version):
        assert (code, out) == (0, None)
    else:
        assert out["code"] == 1


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS)
def test_gc_and_status_need_110(version: str) -> None:
    for command in ("GC", "STATUS"):
        code, out = call(conf(version), CNI_COMMAND=command, CNI_CONTAINERID="", CNI_IFNAME="")
        if has_gc(version):
            assert (code, out) == (0, None)
        else:
            assert out["code"] == 1


def test_conflist_cni_versions_picks_the_highest_supported() -> None:
    code, out = call(conf("0.3.1", cniVersions=["0.4.0", "1.0.0", "7.0.0"]))
    assert code == 0
    assert out["cniVersion"] == "1.0.0"


def test_unexpected_exception_is_an_error_object_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.helpers.echo_plugin as echo

    def boom(*_: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(echo, "add", boom)
    code, out = call(conf())
    assert code != 0
    assert out["code"] == 999
    assert "ZeroDivisionError" in out["msg"] and "Traceback" not in json.dumps(out)
