"""multus: multus-cni's scratch cache `<cniDir>/<containerID>`, written in its exact format, is
DELeted by ours (every delegate, in reverse, with the configs it recorded); the plan ours
writes is that array, which multus-cni's DEL walks the same way.

multus-cni is not packaged here. Its cache is the array `saveDelegates` writes (json.Marshal of
[]*DelegateNetConf): written here from its source for a pod whose delegates the Debian Go
plugins attached (single-config NADs: `Conf` the whole config, `ConfList` empty, as
`LoadDelegateNetConf` leaves them), and made from a pod our multus attached, with our keys taken
out and `ifnameRequest` only where a selection asked for an interface. Its DEL is played from
its source: for each element in reverse, the config in `Bytes` on `ifnameRequest`, else
CNI_IFNAME for the first, else `net<index>`, through libcni with the result cache in cniDir
(`pycni exec`, our libcni runtime), then the file goes.
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
from tests.helpers.netns import Netns
from tests.meta_multus.conftest import mnode  # noqa: F401  (the fixture, for this module)
from tests.meta_multus.helpers import MultusNode, pod_manifest, write_manifests
from tests.meta_multus.test_lifecycle import (
    BLUE_SUBNET,
    CLUSTER_SUBNET,
    assert_nothing_left,
    cluster_and_blue,
)
from tests.migration.node import GO_BIN


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


def netconf(config: dict[str, Any]) -> dict[str, Any]:
    """`types.NetConf` of a config as Go marshals it: its known keys, `ipam` reduced to its type."""
    out: dict[str, Any] = {k: config[k] for k in ("cniVersion", "name", "type") if k in config}
    return {**out, "ipam": {"type": config["ipam"]["type"]} if "ipam" in config else {}, "dns": {}}


def multus_cni_element(config: dict[str, Any], name: str, ifname_request: str = "") -> dict[str, Any]:
    """One `DelegateNetConf` of a single-config NAD, keys in the struct's order."""
    element: dict[str, Any] = {
        "Conf": netconf(config),
        "ConfList": {},  # types.NetConfList, every key omitempty
        "CNINetworkConfigList": {"Name": "", "CNIVersion": "", "DisableCheck": False, "DisableGC": False,
                                 "Plugins": None, "Bytes": None},
        "Name": name,
    }  # fmt: skip
    if ifname_request:
        element["ifnameRequest"] = ifname_request
    element |= {"IsFilterV4Gateway": False, "IsFilterV6Gateway": False}
    element["Bytes"] = base64.b64encode(json.dumps(config, separators=(",", ":")).encode()).decode()
    return element


def go_delegate_add(node: MultusNode, pod: Netns, config: dict[str, Any], ifname: str) -> None:
    """multus-cni's delegateAdd: the Debian Go plugin run through libcni, results under cniDir."""
    path = node.tmp / f"{config['name']}-{ifname}.conf"
    path.write_text(json.dumps(config))
    args = "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=ctr-1"
    argv = [sys.executable, "-m", "pycni", "exec", "add", "--conf", str(path), "--netns", pod.path]
    argv += ["--ifname", ifname, "--container-id", "ctr-1", "--cache-dir", str(node.cni_dir)]
    argv += ["--cni-path", str(GO_BIN), "--exec-plugins", "--args", args]
    done = subprocess.run(
        ["ip", "netns", "exec", node.ns.name, *argv],
        env={**node.env, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_our_del_of_a_multus_cni_cache_written_from_its_source(mnode: MultusNode) -> None:  # noqa: F811
    """The cache and the attachments are all multus-cni's and the Go plugins'; no API server or
    manifest is there at DEL, so ours has the cache alone to go by."""
    cluster = mnode.bridge("cluster", "mmc0", CLUSTER_SUBNET, gateway=True)
    blue = mnode.bridge("blue", "mmb0", BLUE_SUBNET)
    pod = mnode.pod()
    delegates = [(cluster, "kube-system/cluster", "", "eth0"), (blue, "default/blue", "", "net1")]
    delegates.append((blue, "default/blue", "data0", "data0"))
    mnode.cni_dir.mkdir(parents=True, exist_ok=True)
    array = [multus_cni_element(config, name, request) for config, name, request, _ in delegates]
    (mnode.cni_dir / "ctr-1").write_text(json.dumps(array, separators=(",", ":")))
    for config, _, _, ifname in delegates:
        go_delegate_add(mnode, pod, config, ifname)
    assert pod.link_names() == {"lo", "eth0", "net1", "data0"} and len(mnode.leases()) == 3
    mnode.manifests.mkdir(parents=True, exist_ok=True)
    mnode.multus("DEL", mnode.multus_conf(), pod, name="web").ok()
    assert_nothing_left(mnode, pod)
