"""A network config cannot choose where device-info files are written or which file DEL deletes.

Delegates write the file `runtimeConfig.CNIDeviceInfoFile` names (when absent) and remove it on
DEL; multus deletes an attachment's copy on DEL. So only multus names that path, always in its
device-info directory: a NAD's own `CNIDeviceInfoFile` is dropped before the delegate sees it, and
a DEL rebuilt from the result cache deletes no file outside that directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pycni.cni.runtime import Command, RuntimeArgs
from pycni.libcni.cache import CachedAttachment
from pycni.meta_multus.teardown import from_cache
from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.meta_multus.helpers import STUB_TYPE, install_stub, nad_manifest, pod_manifest, write_manifests
from tests.security.conftest import Jail
from tests.security.test_names import multus_conf, plugin_env, run


@pytest.mark.netns
def test_a_nad_cannot_name_the_device_info_file(
    direct: Runner, make_netns: object, pod: Netns, jail: Jail
) -> None:
    node: Netns = make_netns("secn")  # type: ignore[operator]
    install_stub(jail.root / "bin")
    record = jail.root / "calls.jsonl"
    target = jail.root / "victim"
    stub = {
        "cniVersion": "1.0.0",
        "type": STUB_TYPE,
        "record": str(record),
        "runtimeConfig": {"CNIDeviceInfoFile": str(target), "other": 1},
    }
    write_manifests(
        jail.root / "manifests", [pod_manifest("web", networks="net-a"), nad_manifest("net-a", stub)]
    )
    conf = multus_conf(jail)
    conf["delegates"] = [{"cniVersion": "1.0.0", "name": "cluster", "type": STUB_TYPE, "record": str(record)}]
    jail.settle()
    out = run(direct, node, pod, jail, "multus", conf, cni_args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web")
    assert out.code == 0, out.stdout
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    secondary = [c for c in calls if c["ifname"] == "net1"]
    assert secondary and all("CNIDeviceInfoFile" not in c["conf"].get("runtimeConfig", {}) for c in secondary)
    assert secondary[0]["conf"]["runtimeConfig"] == {"other": 1}
    args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
    env = plugin_env(jail)
    out = direct("multus", "DEL", conf, netns=pod.path, cni_args=args, env=env, netns_exec=node.name)
    assert out.code == 0, out.stdout


def cached(info_file: str) -> CachedAttachment:
    config = {
        "cniVersion": "1.0.0",
        "name": "net-a",
        "plugins": [
            {"type": "sriov", "runtimeConfig": {"deviceID": "0000:03:02.1", "CNIDeviceInfoFile": info_file}}
        ],
    }
    return CachedAttachment(
        network="net-a", container_id="ctr-1", ifname="net1", netns="", result=None, cni_args=[],
        capability_args={}, config=json.dumps(config).encode(),
    )  # fmt: skip


def test_del_from_the_cache_deletes_only_device_info_copies(tmp_path: Path) -> None:
    """A cached config's CNIDeviceInfoFile outside the copies' directory is not taken as one."""
    info_dir = tmp_path / "devinfo" / "cni"
    rt = RuntimeArgs(Command.DEL, "ctr-1", "", "eth0")
    for outside in ("/etc/hostname", str(tmp_path / "victim"), str(info_dir / ".." / "victim")):
        att = from_cache(cached(outside), rt, info_dir)
        assert att is not None and att.device_info_file == ""
    inside = str(info_dir / "default-net-a-ctr-1_net1")
    att = from_cache(cached(inside), rt, info_dir)
    assert att is not None and att.device_info_file == inside and att.device_id == "0000:03:02.1"
