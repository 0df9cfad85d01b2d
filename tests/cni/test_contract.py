"""The plugin contract holds for every registered type, and is enforced for any other."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from pycni import registry
from pycni.cni.config import NetConf
from pycni.cni.errors import InternalError, InvalidConfig
from pycni.cni.plugin import VERBS, Context, PluginRef, missing_verbs
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.skel import run
from tests.helpers.cni import ALL_SPEC_VERSIONS
from tests.helpers.delegates import RecordingDelegate

MISSPELT = PluginRef("misspelt", "pycni.cni.config:NetConf", "tests.helpers.misspelt_plugin")


@pytest.mark.parametrize("plugin_type", sorted(registry.PLUGINS))
def test_every_registered_type_defines_every_verb(plugin_type: str) -> None:
    ref = registry.PLUGINS[plugin_type]
    ops = ref.load_ops()
    assert missing_verbs(ops) == []
    assert all(callable(getattr(ops, verb)) for verb in VERBS)
    assert issubclass(ref.load_conf_model(), NetConf)


@pytest.mark.parametrize("plugin_type", sorted(registry.PLUGINS))
def test_every_registered_type_answers_version(plugin_type: str) -> None:
    out = io.StringIO()
    code = registry.run(plugin_type, {"CNI_COMMAND": "VERSION"}, io.BytesIO(b'{"cniVersion":"0.4.0"}'), out)
    assert code == 0
    assert json.loads(out.getvalue()) == {"cniVersion": "0.4.0", "supportedVersions": list(ALL_SPEC_VERSIONS)}


def test_a_misspelt_verb_is_an_error_not_a_silent_success() -> None:
    with pytest.raises(InternalError, match="does not define delete"):
        MISSPELT.load_ops()
    out = io.StringIO()
    env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
    stdin = io.BytesIO(json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "misspelt"}).encode())
    code = run(MISSPELT, env, stdin, out, lambda s: Context(RecordingDelegate(), s))
    answer = json.loads(out.getvalue())
    assert code == 1 and answer["code"] == 999 and "delete" in answer["msg"]


# -- the rules a type declares, applied by the runner before its verb --------------------------

RECORDING_ECHO = PluginRef(
    "echo",
    "tests.helpers.echo_plugin:EchoConf",
    "tests.helpers.echo_plugin",
    delegates_ipam=True,
    needs_prev_result=True,
)
PLAIN_ECHO = RECORDING_ECHO._replace(delegates_ipam=False, needs_prev_result=False)
ENV = {
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/proc/self/ns/net",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


class RefusingDelegate(RecordingDelegate):
    """Judges every IPAM section invalid, as host-local does one with a bad range."""

    def validate(self, plugin_type: str, conf: Any, rt: RuntimeArgs) -> None:
        raise InvalidConfig(f"invalid {plugin_type} config: ranges: bad")


def _echo(
    plugin: PluginRef, command: str, conf: dict[str, Any], tmp_path: Path, delegate: RecordingDelegate
) -> tuple[int, Any, list[str]]:
    record = tmp_path / "record"
    stdin = io.BytesIO(json.dumps({**conf, "record": str(record)}).encode())
    out = io.StringIO()
    env = {**ENV, "CNI_COMMAND": command, "PYCNI_RUN_DIR": str(tmp_path / "run")}
    code = run(plugin, env, stdin, out, lambda s: Context(delegate, s))
    text = out.getvalue()
    verbs = record.read_text().splitlines() if record.exists() else []
    return code, json.loads(text) if text else None, verbs


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "STATUS", "GC"])
def test_a_type_that_delegates_ipam_has_it_judged_before_every_verb(command: str, tmp_path: Path) -> None:
    conf: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "name": "n",
        "type": "echo",
        "ipam": {"type": "host-local"},
    }
    code, answer, verbs = _echo(RECORDING_ECHO, command, conf, tmp_path, RefusingDelegate())
    assert (code, answer["code"], verbs) == (1, 7, [])
    assert answer["msg"] == "invalid host-local config: ranges: bad"
    code, _, verbs = _echo(PLAIN_ECHO, command, conf, tmp_path, RefusingDelegate())
    assert code == 0 and [v.split()[0] for v in verbs] == [command]  # undeclared: the verb's business


def test_an_ipam_type_naming_the_plugin_itself_is_refused(tmp_path: Path) -> None:
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "echo", "ipam": {"type": "echo"}}
    code, answer, verbs = _echo(RECORDING_ECHO, "DEL", conf, tmp_path, RecordingDelegate())
    assert (code, answer["code"], verbs) == (1, 7, [])
    assert "names the plugin itself" in answer["msg"]


def test_an_add_whose_result_could_not_be_printed_is_refused_before_the_verb(tmp_path: Path) -> None:
    old: dict[str, Any] = {"cniVersion": "0.2.0", "name": "n", "type": "echo"}  # its result needs an IP
    code, answer, verbs = _echo(RECORDING_ECHO, "ADD", old, tmp_path, RecordingDelegate())
    assert (code, answer["code"], verbs) == (1, 1, [])
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "n", "type": "echo", "dns": {"nameservers": "x"}}
    code, answer, verbs = _echo(RECORDING_ECHO, "ADD", conf, tmp_path, RecordingDelegate())
    assert (code, answer["code"], verbs) == (1, 7, [])
    code, _, verbs = _echo(RECORDING_ECHO, "DEL", conf, tmp_path, RecordingDelegate())
    assert (code, len(verbs)) == (0, 1)  # an ADD-only rule


def test_a_check_without_prev_result_is_refused_before_the_verb(tmp_path: Path) -> None:
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "echo"}
    code, answer, verbs = _echo(RECORDING_ECHO, "CHECK", conf, tmp_path, RecordingDelegate())
    assert (code, answer["code"], answer["msg"], verbs) == (1, 999, "required prevResult missing", [])
    with_prev = {**conf, "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}]}}
    code, _, verbs = _echo(RECORDING_ECHO, "CHECK", with_prev, tmp_path, RecordingDelegate())
    assert (code, len(verbs)) == (0, 1)


#: A config each type loads (its verbs are never reached in the tests below).
MINIMAL: dict[str, dict[str, Any]] = {
    "bridge": {},
    "vxlan": {"vni": 42, "remotes": ["192.0.2.1"]},
    "sriov": {"deviceID": "0000:03:02.0"},
    "host-device": {"device": "eth9"},
}


def test_the_declarations_of_the_registered_types() -> None:
    declared = {ref.type: (ref.delegates_ipam, ref.needs_prev_result) for ref in registry.PLUGINS.values()}
    assert declared == {
        "bridge": (True, True),
        "vxlan": (True, True),
        "sriov": (True, True),
        "host-device": (True, True),
        "host-local": (False, False),  # it is the IPAM plugin; its CHECK reads prevResult only if given
        "multus": (False, False),  # its delegates judge their own sections; CHECK goes by its plan
    }


@pytest.mark.parametrize("plugin_type", sorted(MINIMAL))
def test_every_declaring_type_gets_the_rules_from_the_runner(plugin_type: str, tmp_path: Path) -> None:
    """Through the registry, the real ops module and the real delegate: nothing of the type runs."""
    conf = {"cniVersion": "1.1.0", "name": "n", "type": plugin_type, **MINIMAL[plugin_type]}
    env = {**ENV, "PYCNI_RUN_DIR": str(tmp_path / "run"), "PYCNI_STATE_DIR": str(tmp_path / "state")}
    out = io.StringIO()
    code = registry.run(
        plugin_type, {**env, "CNI_COMMAND": "CHECK"}, io.BytesIO(json.dumps(conf).encode()), out
    )
    assert (code, json.loads(out.getvalue())["msg"]) == (1, "required prevResult missing")
    bad_ipam = {**conf, "ipam": {"type": "host-local", "ranges": "not a list"}}
    for command in ("ADD", "DEL", "STATUS", "GC"):
        out = io.StringIO()
        stdin = io.BytesIO(json.dumps(bad_ipam).encode())
        code = registry.run(plugin_type, {**env, "CNI_COMMAND": command}, stdin, out)
        answer = json.loads(out.getvalue())
        assert (code, answer["code"]) == (1, 7), (command, answer)
        assert "ipam.ranges" in answer["msg"], answer  # host-local's model judged it
    assert not (tmp_path / "state").exists()  # no verb recorded anything
