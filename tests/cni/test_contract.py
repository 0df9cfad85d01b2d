"""The plugin contract holds for every registered type, and is enforced for any other."""

from __future__ import annotations

import io
import json

import pytest

from pycni import registry
from pycni.cni.config import NetConf
from pycni.cni.errors import InternalError
from pycni.cni.plugin import VERBS, Context, PluginRef, missing_verbs
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
