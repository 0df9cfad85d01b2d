"""A config cannot make a plugin execute a file outside the plugin directories.

Every way a multus network names its plugin (a NAD's spec.config, a conflist's plugins, the
cluster network in confDir, inline `delegates`) and an IPAM `type` delegated by a main plugin:
a relative path, an absolute path, `.` and `..` are refused as config errors, and a marker
executable placed where such a path leads is never run.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.meta_multus.helpers import nad_manifest, pod_manifest, write_manifests
from tests.security.conftest import Jail
from tests.security.test_names import base_conf, multus_conf, plugin_env, run

pytestmark = pytest.mark.netns

POD_ARGS = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"


def hostile_types(jail: Jail) -> list[str]:
    """Each leads to the marker from binDir (`<jail>/bin`) or names it outright."""
    relative = os.path.relpath(jail.marker, jail.root / "bin")
    return [relative, "../../bin/sh", str(jail.marker), "/bin/sh", ".", ".."]


TYPE_INDEXES = range(6)


def assert_never_ran(out: Any, jail: Jail) -> None:
    assert out.code != 0 and out.error_code == 7, (out.stdout, out.stderr)
    assert not jail.ran.exists(), jail.ran.read_text()
    assert not jail.escaped(), jail.escaped()


@pytest.fixture
def node(make_netns: Any) -> Netns:
    ns: Netns = make_netns("secn")
    return ns


@pytest.mark.parametrize("index", TYPE_INDEXES)
@pytest.mark.parametrize("form", ["single", "conflist"])
def test_nad_type(direct: Runner, node: Netns, pod: Netns, jail: Jail, index: int, form: str) -> None:
    kind = hostile_types(jail)[index]
    plugin = {"type": kind}
    config: dict[str, Any] = {"cniVersion": "1.0.0", **plugin}
    if form == "conflist":
        config = {"cniVersion": "1.0.0", "name": "net-a", "plugins": [{"type": "host-local"}, plugin]}
    (jail.root / "bin").mkdir(exist_ok=True)
    write_manifests(
        jail.root / "manifests", [pod_manifest("web", networks="net-a"), nad_manifest("net-a", config)]
    )
    jail.settle()
    out = run(direct, node, pod, jail, "multus", multus_conf(jail), cni_args=POD_ARGS)
    assert_never_ran(out, jail)
    assert "plain executable name" in out.json["msg"]


@pytest.mark.parametrize("index", TYPE_INDEXES)
@pytest.mark.parametrize("where", ["confDir", "delegates"])
def test_cluster_network_type(
    direct: Runner, node: Netns, pod: Netns, jail: Jail, index: int, where: str
) -> None:
    kind = hostile_types(jail)[index]
    conf = base_conf("multus", jail)  # no pod source: the cluster network comes from the config
    if where == "confDir":
        (jail.root / "net.d").mkdir()
        (jail.root / "net.d" / "10-cluster.conf").write_text(
            json.dumps({"cniVersion": "1.0.0", "name": "cluster", "type": kind})
        )
        conf.pop("delegates")
        conf["clusterNetwork"] = "cluster"
    else:
        conf["delegates"] = [{"cniVersion": "1.0.0", "name": "cluster", "type": kind}]
    jail.settle()
    out = run(direct, node, pod, jail, "multus", conf)
    assert_never_ran(out, jail)


@pytest.mark.parametrize("index", TYPE_INDEXES)
def test_ipam_type(direct: Runner, node: Netns, pod: Netns, jail: Jail, index: int) -> None:
    """bridge delegates its IPAM: the type is exec'd from CNI_PATH only as a plain name."""
    conf = base_conf("bridge", jail)
    conf["ipam"] = {"type": hostile_types(jail)[index]}
    (jail.root / "bin").mkdir(exist_ok=True)
    jail.settle()
    out = direct(
        "bridge",
        "ADD",
        conf,
        netns=pod.path,
        env={**plugin_env(jail), "CNI_PATH": str(jail.root / "bin")},
        netns_exec=node.name,
    )
    assert_never_ran(out, jail)
