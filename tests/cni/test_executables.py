"""The installed executables, exec'd as a runtime does: VERSION, error codes, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pycni.registry import PLUGINS
from tests.helpers.cni import ALL_SPEC_VERSIONS, Runner

TYPES = sorted(PLUGINS)


@pytest.mark.parametrize("plugin_type", TYPES)
def test_version_for_every_type(cni: Runner, plugin_type: str) -> None:
    out = cni(plugin_type, "VERSION", {"cniVersion": "1.0.0"}, container_id=None, ifname=None).ok()
    assert out == {"cniVersion": "1.0.0", "supportedVersions": list(ALL_SPEC_VERSIONS)}


@pytest.mark.parametrize("plugin_type", TYPES)
def test_version_imports_nothing_heavy(bin_dir: Path, plugin_type: str) -> None:
    probe = (
        "import sys, io\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'{}'))\n"
        f"code = open({str(bin_dir / plugin_type)!r}).read()\n"
        "try:\n    exec(compile(code, 'launcher', 'exec'), {'__name__': '__main__'})\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('pyroute2', 'grpc', 'pydantic', 'pyudev'))\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-IS", "-c", probe],
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(proc.stdout)["supportedVersions"]
    assert proc.stderr == "[]"


def test_launcher_names_its_interpreter_by_absolute_path(bin_dir: Path) -> None:
    first = (bin_dir / "bridge").read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"
    assert Path(sys.executable).is_absolute() and "shims" not in sys.executable


CONF = {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", "ipam": {}}


@pytest.mark.parametrize(
    ("stdin", "env", "code", "names", "version"),
    [
        (b"{oops", {}, 6, "", None),
        (json.dumps({"cniVersion": "1.0.0", "type": "bridge"}).encode(), {}, 7, "name", "1.0.0"),
        (json.dumps({**CONF, "cniVersion": "0.0.9"}).encode(), {}, 1, "0.0.9", "0.0.9"),
        (json.dumps(CONF).encode(), {"CNI_IFNAME": "eth0:1"}, 4, "CNI_IFNAME", "1.0.0"),
        (json.dumps(CONF).encode(), {"CNI_IFNAME": "averyveryverylongname"}, 4, "CNI_IFNAME", "1.0.0"),
        (json.dumps(CONF).encode(), {"CNI_CONTAINERID": "bad id"}, 4, "CNI_CONTAINERID", "1.0.0"),
        (json.dumps(CONF).encode(), {"CNI_COMMAND": "JUMP"}, 4, "CNI_COMMAND", "1.0.0"),
        (json.dumps(CONF).encode(), {"CNI_ARGS": "NOEQUALS"}, 4, "CNI_ARGS", "1.0.0"),
        (json.dumps(CONF).encode(), {"CNI_NETNS": "/proc/self/status"}, 4, "CNI_NETNS", "1.0.0"),
    ],
)
@pytest.mark.parametrize("plugin_type", TYPES)
def test_error_paths_give_the_right_code(
    cni: Runner,
    plugin_type: str,
    stdin: bytes,
    env: dict[str, str],
    code: int,
    names: str,
    version: str | None,
) -> None:
    """Spec "Error": the right code, a message naming what is wrong, the config's cniVersion."""
    out = cni(plugin_type, "ADD", stdin, netns="/run/netns/none", env=env)
    assert out.code != 0
    assert out.json["code"] == code, out.stdout
    assert out.json["msg"] and names in out.json["msg"]
    assert out.json.get("cniVersion") == version
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize("missing", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"])
def test_missing_env_is_code_4_naming_it(cni: Runner, missing: str) -> None:
    out = cni("bridge", "ADD", CONF, netns="/run/netns/none", env={missing: ""})
    assert out.json["code"] == 4 and missing in out.json["msg"]


def test_launcher_module_imports_only_the_protocol() -> None:
    """Every CNI call imports the launcher under `-I -S`: nothing but its import-free protocol."""
    repo = str(Path(__file__).resolve().parents[2])
    probe = (
        f"import sys; sys.path.insert(0, {repo!r}); import pycni.daemon.launcher; "
        "print(sorted(m for m in sys.modules if 'pycni' in m))"
    )
    proc = subprocess.run(
        [sys.executable, "-IS", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout.replace("'", '"')) == [
        "pycni",
        "pycni.cni",
        "pycni.cni.env_names",
        "pycni.daemon",
        "pycni.daemon.launcher",
        "pycni.daemon.protocol",
    ]
