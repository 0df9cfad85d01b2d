"""Fuzzing a whole multus ADD: fuzzed pod annotations and NAD bodies from a manifest directory.

Each example writes a pod and its NADs, runs ADD in-process (as a daemon worker does), and
checks the spec's promise: an answer is a result or one error object, and a failed ADD leaves
nothing behind: no plan, no cached result, no address reserved by a delegate, no device-info copy.
A successful ADD is DEL'd and must leave the same nothing. The delegates are host-local run
in-process (cheap, and it keeps state on disk to leak); hostile plugin types point at a marker
executable that records it was run, which must never happen.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.helpers.fuzz import FUZZ_EXAMPLES, assert_spec_answer, call_inprocess, fuzz_settings
from tests.helpers.netns import Netns
from tests.meta_multus.helpers import nad_manifest, pod_manifest

pytestmark = [pytest.mark.fuzz, pytest.mark.netns]

POD = "fuzz-pod"
MARKER = """#!/bin/sh
touch "{ran}"
"""

NAMES = st.sampled_from(["net-a", "net-b", "Net-A", "../../x", "a/b", "..", "net-a\n", ""])
NAMESPACES = st.sampled_from(["default", "other", "../..", "kube-system", ""])
IFNAMES = st.sampled_from(["net1", "eth1", "../e", "a/b", ".", "x" * 16, "eth0", ""])
TYPES = st.sampled_from(
    ["host-local", "host-local", "../../marker", "/MARKER", ".", "..", "multus", "nope", ""]
)
SUBNETS = st.sampled_from(["10.77.0.0/29", "10.78.0.0/30", "fd77::/124", "300.0.0.0/8", "10.79.0.0/32"])
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=8))
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def plugin(draw: st.DrawFn) -> dict[str, Any]:
    conf: dict[str, Any] = {"type": draw(TYPES)}
    if draw(st.integers(0, 5)):
        ipam: dict[str, Any] = {"type": "host-local", "ranges": [[{"subnet": draw(SUBNETS)}]]}
        conf["ipam"] = ipam if draw(st.integers(0, 6)) else draw(JSON_VALUE)
    for key in draw(
        st.lists(st.sampled_from(["capabilities", "args", "runtimeConfig", "dataDir"]), max_size=2)
    ):
        conf[key] = draw(
            JSON_VALUE
            | st.sampled_from(
                [{"ips": True, "mac": True}, {"CNIDeviceInfoFile": "/etc/hostname"}, {"cni": 5}]
            )
        )
    return conf


@st.composite
def nad_body(draw: st.DrawFn) -> dict[str, Any] | str | None:
    head: dict[str, Any] = {"cniVersion": draw(st.sampled_from(["1.0.0", "0.4.0", "0.3.1", "9.9.9"]))}
    if draw(st.booleans()):
        head["name"] = draw(NAMES | st.text(max_size=6))
    kind = draw(st.integers(0, 5))
    if kind <= 2:
        return {**head, **draw(plugin())}
    if kind == 3:
        return {**head, "plugins": draw(st.lists(plugin(), max_size=3))}
    if kind == 4:
        return None  # no spec.config: looked up in confDir by name
    return draw(st.text(max_size=20))


@st.composite
def selection_element(draw: st.DrawFn) -> dict[str, Any]:
    element: dict[str, Any] = {"name": draw(NAMES)}
    extra = {
        "namespace": NAMESPACES,
        "interface": IFNAMES,
        "ips": st.lists(st.sampled_from(["10.77.0.3/29", "bad"]), max_size=2),
        "mac": st.sampled_from(["c2:11:22:33:44:55", "zz"]),
        "default-route": st.lists(st.sampled_from(["10.77.0.1", "fd77::1", "x"]), max_size=2),
        "cni-args": JSON_VALUE,
        "deviceID": st.sampled_from(["0000:03:02.1", "../../x", "\x00"]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(extra)), max_size=3, unique=True)):
        element[key] = draw(extra[key])
    return element


@st.composite
def annotation(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        items = []
        for _ in range(draw(st.integers(0, 3))):
            item = draw(NAMES)
            if draw(st.booleans()):
                item = f"{draw(NAMESPACES)}/{item}"
            if draw(st.booleans()):
                item = f"{item}@{draw(IFNAMES)}"
            items.append(item)
        return ",".join(items)
    return json.dumps(draw(st.lists(selection_element(), max_size=3)))


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    nads = []
    for _ in range(draw(st.integers(0, 3))):
        nads.append(
            {
                "name": draw(st.sampled_from(["net-a", "net-b"])),
                "namespace": draw(st.sampled_from(["default", "other"])),
                "config": draw(nad_body()),
                "resource": draw(st.sampled_from(["", "", "pycni.io/sriov_a", "../../r"])),
            }
        )
    return {"annotation": draw(annotation()), "nads": nads}


class Node:
    """The test's directories, shared by its examples: each must leave them as it found them."""

    def __init__(self, base: Path, pod: Netns) -> None:
        self.base = base
        self.pod = pod
        self.bin = self.base / "bin"
        self.ran = self.base / "marker-ran"
        self.bin.mkdir(parents=True)
        (self.base / "net.d").mkdir()
        (self.base / "devinfo" / "dp").mkdir(parents=True)
        marker = self.base / "marker"
        marker.write_text(MARKER.format(ran=self.ran))
        marker.chmod(0o755)
        nope = self.bin / "nope"  # a legitimate exec'd type in binDir that refuses every config
        nope.write_text('#!/bin/sh\necho \'{"cniVersion": "1.0.0", "code": 7, "msg": "nope"}\'\nexit 1\n')
        nope.chmod(0o755)

    def conf(self) -> dict[str, Any]:
        (self.base / "net.d" / "cluster.conf").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "cluster",
                    "type": "host-local",
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(self.ipam),
                        "ranges": [[{"subnet": "10.76.0.0/28"}]],
                    },
                }
            )
        )
        return {
            "cniVersion": "1.0.0",
            "name": "multus-cni-network",
            "type": "multus",
            "clusterNetwork": "cluster",
            "confDir": str(self.base / "net.d"),
            "cniDir": str(self.cni_dir),
            "binDir": str(self.bin),
            "deviceInfoDir": str(self.base / "devinfo"),
            "podResourcesSocket": str(self.base / "no-kubelet.sock"),
            "manifests": str(self.base / "manifests"),
        }

    @property
    def ipam(self) -> Path:
        return self.base / "ipam"

    @property
    def cni_dir(self) -> Path:
        return self.base / "multus"

    def env(self, command: str) -> dict[str, str]:
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "fuzz-ctr",
            "CNI_NETNS": self.pod.path,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": str(self.bin),
            "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={POD}",
            "PYCNI_STATE_DIR": str(self.base / "state"),
            "PYCNI_RUN_DIR": str(self.base / "run"),
            "PYCNI_SYSFS_ROOT": str(self.base / "sys"),
        }

    def reset(self) -> None:
        """What a failed example left is its failure, not the next example's."""
        for path in (self.cni_dir, self.ipam, self.base / "devinfo" / "cni", self.ran):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        """Plans, cached results, reserved addresses and device-info copies still on disk."""
        found = []
        if self.cni_dir.exists():
            found += [str(p) for p in self.cni_dir.rglob("*") if p.is_file()]
        if self.ipam.exists():
            found += [
                str(p) for p in self.ipam.rglob("*") if p.is_file() and (p.name[0].isdigit() or ":" in p.name)
            ]
        found += [str(p) for p in (self.base / "devinfo" / "cni").rglob("*") if p.is_file()]
        return found


def _pod_and_nads(node: Node, case: dict[str, Any]) -> None:
    objects = [pod_manifest(POD, networks=case["annotation"])]
    for nad in case["nads"]:
        config = nad["config"]
        obj = nad_manifest(nad["name"], None, nad["namespace"], nad["resource"])
        if isinstance(config, str):
            obj["spec"] = {"config": config}
        elif config is not None:
            plugins = config.get("plugins") if isinstance(config.get("plugins"), list) else [config]
            for p in plugins:
                if isinstance(p, dict) and isinstance(p.get("ipam"), dict):
                    p["ipam"].setdefault("dataDir", str(node.ipam))
                if isinstance(p, dict) and p.get("type") == "/MARKER":
                    p["type"] = str(node.base / "marker")
            obj["spec"] = {"config": json.dumps(config)}
        objects.append(obj)
    (node.base / "manifests").mkdir(exist_ok=True)
    (node.base / "manifests" / "objects.json").write_text(json.dumps({"kind": "List", "items": objects}))


@pytest.fixture
def node(make_netns: Callable[..., Netns], tmp_path: Path) -> Node:
    return Node(tmp_path, make_netns("mmf"))


@fuzz_settings(max_examples=max(FUZZ_EXAMPLES, 1))
@given(case=scenario())
@example(case={"annotation": "../../x", "nads": []})
@example(case={"annotation": "net-a", "nads": []})  # a missing NAD is a config error (7), not 999
@example(  # a plugin's capabilities, args or runtimeConfig that is not an object: 7, not 999
    case={
        "annotation": '[{"name": "net-a"}]',
        "nads": [
            {
                "name": "net-a",
                "namespace": "default",
                "config": {"cniVersion": "1.0.0", "plugins": [{"type": "host-local", "capabilities": True}]},
                "resource": "",
            }
        ],
    }
)
@example(  # the delegate refuses its config on ADD and on DEL: the rollback must not keep a plan
    case={
        "annotation": "net-a",
        "nads": [
            {
                "name": "net-a",
                "namespace": "default",
                "config": {"cniVersion": "1.0.0", "type": "host-local"},
                "resource": "",
            }
        ],
    }
)
@example(  # default-route from a network that made no interface: the others' routes go, no 999
    case={
        "annotation": '[{"name": "net-a", "default-route": []}]',
        "nads": [
            {
                "name": "net-a",
                "namespace": "default",
                "config": {"cniVersion": "1.0.0", "type": "host-local"},
                "resource": "",
            }
        ],
    }
)
@example(  # a gateway requested on a network that made no interface: a config error (7)
    case={
        "annotation": '[{"name": "net-a", "default-route": ["10.9.0.1"]}]',
        "nads": [
            {
                "name": "net-a",
                "namespace": "default",
                "config": {"cniVersion": "1.0.0", "type": "host-local"},
                "resource": "",
            }
        ],
    }
)
@example(case={"annotation": '[{"name": "net-a", "namespace": "../.."}]', "nads": []})
@example(
    case={
        "annotation": "net-a",
        "nads": [
            {
                "name": "net-a",
                "namespace": "default",
                "config": {"cniVersion": "1.0.0", "type": "../../marker"},
                "resource": "",
            }
        ],
    }
)
@example(
    case={
        "annotation": "net-a@net1",
        "nads": [
            {
                "name": "net-a",
                "namespace": "default",
                "config": {
                    "cniVersion": "1.0.0",
                    "type": "host-local",
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/29"}]]},
                },
                "resource": "",
            }
        ],
    }
)
def test_add(case: dict[str, Any], node: Node) -> None:
    node.reset()
    _pod_and_nads(node, case)
    stdin = json.dumps(node.conf()).encode()
    answer = call_inprocess("multus", node.env("ADD"), stdin)
    assert_spec_answer(answer)
    if answer.code == 0:
        deleted = call_inprocess("multus", node.env("DEL"), stdin)
        assert deleted.code == 0, deleted.stdout
    assert not node.leftovers(), f"left behind after {'ADD+DEL' if answer.code == 0 else answer.stdout}"
    assert not node.ran.exists(), "a plugin type outside binDir was executed"
