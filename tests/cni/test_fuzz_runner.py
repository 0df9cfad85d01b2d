"""Fuzz the runner of every registered plugin type: any env, any stdin -> a spec answer.

Calls run in-process (as a daemon worker runs them) with the test thread inside a throw-away
network namespace, so a mutant that happens to validate acts on that namespace only; every
path a config names is pinned under the test's directory. CNI_NETNS never names a real
namespace, so no ADD can succeed in a pod: afterwards the namespace must hold no new link
but a network's shared bridge or VXLAN device (a failed ADD leaves nothing of its own behind).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycni.cni import env_names
from pycni.cni.runtime import CNI_VARS
from pycni.net.netns import entered
from pycni.registry import PLUGINS
from tests.cni import fuzz_inputs
from tests.helpers.fuzz import assert_spec_answer, call_inprocess, fuzz_settings
from tests.helpers.netns import Netns

pytestmark = pytest.mark.fuzz

#: Non-UTF-8 bytes as Python hands them over: lone surrogates.
not_utf8 = st.binary(min_size=1, max_size=16).map(lambda b: b.decode("utf-8", "surrogateescape"))

#: Values a runtime sends; the first of each is what a well-formed request carries.
GOOD_VALUES = {
    "CNI_COMMAND": ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"],
    "CNI_CONTAINERID": ["fuzz-ctr", "x\n", "-bad"],
    "CNI_NETNS": ["/run/netns/fuzz-never-created", "/proc/self/status", ""],
    "CNI_IFNAME": ["eth0", "net1", "é" * 8],
    "CNI_ARGS": ["IgnoreUnknown=1", "", "IP=10.250.0.20", "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", "x"],
    "CNI_PATH": ["{bin}"],
}


def bad_values(name: str, bin_dir: Path) -> st.SearchStrategy[str | None]:
    good = [v.format(bin=bin_dir) for v in GOOD_VALUES[name]]
    return st.one_of(st.none(), st.sampled_from(good), st.text(max_size=24), not_utf8)


@st.composite
def envs(draw: st.DrawFn, root: Path) -> dict[str, str]:
    """A well-formed request for any verb with up to three variables spoiled; the PYCNI
    variables pin every node path under `root`."""
    env = {
        env_names.STATE_DIR: str(root / "state"),
        env_names.RUN_DIR: str(root / "run"),
        env_names.SYSFS_ROOT: str(root / "sys"),
        env_names.SRIOV_VF_STATE: str(root / "vf-state.json"),
        env_names.DAEMON_MODE: "off",
    }
    env.update({name: values[0].format(bin=root / "bin") for name, values in GOOD_VALUES.items()})
    env["CNI_COMMAND"] = draw(st.sampled_from(GOOD_VALUES["CNI_COMMAND"]))
    spoiled = draw(st.lists(st.sampled_from(CNI_VARS), max_size=3, unique=True))
    for name in spoiled if draw(st.booleans()) else ():
        value = draw(bad_values(name, root / "bin"))
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def stdins(plugin_type: str, root: Path) -> st.SearchStrategy[tuple[bytes, bool]]:
    """(stdin, whether it is a config a real runtime could send) for `plugin_type`."""

    pinned = fuzz_inputs.near_valid_configs(plugin_type).map(lambda c: fuzz_inputs.pin_paths(c, root))
    return st.one_of(
        st.binary(max_size=200).map(lambda b: (b, False)),
        fuzz_inputs.json_values.map(lambda v: (json.dumps(v).encode(), False)),
        pinned.map(lambda c: (json.dumps(c).encode(), True)),
        pinned.flatmap(fuzz_inputs.text_mutants).map(lambda b: (b, False)),
    )


#: Devices a network shares between its attachments; the bridge and vxlan plugins create them
#: on the first ADD and keep them, as the reference bridge keeps its bridge, even when that
#: ADD fails later (here: always, the pod netns never exists).
SHARED_KINDS = ("bridge", "vxlan")


@pytest.fixture
def fuzz_node(make_netns: Callable[..., Netns], tmp_path: Path) -> Iterator[Path]:
    """The test thread inside a throw-away netns; on leaving it, no per-attachment link is left."""
    node = make_netns("fzn")
    for sub in ("bin", "sys", "conf", "log"):
        (tmp_path / sub).mkdir()
    with entered(node.path):
        yield tmp_path
    left = {
        name: link.get("linkinfo", {}).get("info_kind")
        for name, link in node.links().items()
        if link.get("linkinfo", {}).get("info_kind") not in SHARED_KINDS and name != "lo"
    }
    assert not left, f"links left behind in the fuzz node: {left}"


@pytest.mark.netns
@pytest.mark.parametrize("plugin_type", sorted(PLUGINS))
@fuzz_settings()
@given(data=st.data())
def test_runner_answers_any_request_with_a_spec_answer(
    plugin_type: str, fuzz_node: Path, data: st.DataObject
) -> None:
    env = data.draw(envs(fuzz_node), label="env")
    raw, plausible = data.draw(stdins(plugin_type, fuzz_node), label="stdin")
    answer = call_inprocess(plugin_type, env, raw)
    # A plausible config may fail on the node's state (the netns never exists): a 999 there
    # is the plugin's honest answer. Anything else hostile is the caller's fault.
    assert_spec_answer(answer, allow_internal=plausible)
