"""multus: multus-cni's scratch cache `<cniDir>/<containerID>`, written in its exact format, is
DELeted by ours (every delegate, in reverse, with the configs it recorded); the plan ours
writes is that array, which multus-cni's DEL walks the same way.

multus-cni is not packaged here. Its cache is the array `saveDelegates` writes (json.Marshal of
[]*DelegateNetConf): made here from a pod our multus attached, with our keys taken out and
`ifnameRequest` only where a selection asked for an interface, exactly as multus-cni writes
it. Its DEL is played from its source: for each element in reverse, the config in `Bytes` on
`ifnameRequest`, else CNI_IFNAME for the first, else `net<index>`, through libcni with the
result cache in cniDir (`pycni exec`, our libcni runtime), then the file goes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import Runner
from tests.meta_multus.conftest import mnode  # noqa: F401  (the fixture, for this module)
from tests.meta_multus.helpers import MultusNode, pod_manifest, write_manifests
from tests.meta_multus.test_lifecycle import assert_nothing_left, cluster_and_blue


@pytest.fixture
def cni(bin_dir: Path) -> Runner:
    return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"})


def attach(node: MultusNode) -> Any:
    networks = [{"name": "blue"}, {"name": "blue", "interface": "data0"}]
    write_manifests(node.manifests, [*cluster_and_blue(node), pod_manifest("web", networks=networks)])
    pod = node.pod()
    node.multus("ADD", node.multus_conf(), pod, name="web").ok()
    assert pod.link_names() == {"lo", "eth0", "net1", "data0"}
    return pod


def as_multus_cni_wrote_it(path: Path) -> list[dict[str, Any]]:
    """Our plan file without our keys: multus-cni's own array for the same pod."""
    elements = json.loads(path.read_text())
    for index, item in enumerate(elements):
        item.pop("pycni")
        item.pop("pycniPlan", None)
        if item["ifnameRequest"] == ("eth0" if index == 0 else f"net{index}"):
            del item["ifnameRequest"]  # multus-cni sets it only for a requested interface
    return list(elements)


def test_our_del_tears_down_a_pod_multus_cni_attached(mnode: MultusNode) -> None:  # noqa: F811
    pod = attach(mnode)
    plan = mnode.cni_dir / "ctr-1"
    array = as_multus_cni_wrote_it(plan)
    assert [e.get("ifnameRequest") for e in array] == [None, None, "data0"]
    plan.write_text(json.dumps(array, separators=(",", ":")))
    mnode.multus("DEL", mnode.multus_conf(), pod, name="web").ok()
    assert_nothing_left(mnode, pod)


def test_multus_cni_del_walks_our_plan(mnode: MultusNode) -> None:  # noqa: F811
    pod = attach(mnode)
    plan = mnode.cni_dir / "ctr-1"
    for index in reversed(range(len(array := json.loads(plan.read_text())))):
        item = array[index]
        assert len(item["ConfList"]["plugins"]) == 1 and item["ConfList"]["name"] == item["Conf"]["name"]
        ifname = item.get("ifnameRequest") or ("eth0" if index == 0 else f"net{index}")
        conf = mnode.tmp / f"delegate-{index}.conflist"
        conf.write_bytes(base64.b64decode(item["Bytes"]))
        argv = [sys.executable, "-m", "pycni", "exec", "del", "--conf", str(conf), "--netns", pod.path]
        argv += ["--ifname", ifname, "--container-id", "ctr-1", "--cache-dir", str(mnode.cni_dir)]
        argv += ["--cni-path", str(mnode.cni_bin), "--exec-plugins"]
        done = subprocess.run(
            ["ip", "netns", "exec", mnode.ns.name, *argv],
            env={**mnode.env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    plan.unlink()  # multus-cni's DEL removes its cache file
    assert pod.link_names() == {"lo"} and mnode.veths() == [] and mnode.leases() == []
    assert mnode.cached_results() == []
