"""Every name that reaches the filesystem is refused when it could climb out of its directory.

Network names, container IDs, interface names, NAD names and namespaces, pod names from CNI_ARGS,
device IDs, and what host-local and multus join under `dataDir` and `cniDir`. Each case runs the
installed executable (in a throw-away node namespace, so a missed check cannot touch the host)
and checks the spec error and that nothing appeared outside the directories the plugin owns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycni.cni.errors import InvalidEnvironment
from pycni.hw import devinfo
from pycni.hw.sysfs import DeviceNotFound, SysFs
from pycni.meta_multus.plan import PlanStore
from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns
from tests.meta_multus.helpers import nad_manifest, pod_manifest, write_manifests
from tests.security.conftest import Jail

pytestmark = pytest.mark.netns

HOSTILE = ["../x", "a/b", "..", "../../../escaped"]
ALL_TYPES = ["host-local", "bridge", "vxlan", "host-device", "sriov", "multus"]


def plugin_env(jail: Jail) -> dict[str, str]:
    return {
        "PYCNI_STATE_DIR": str(jail.dir("state")),
        "PYCNI_RUN_DIR": str(jail.dir("run")),
        "PYCNI_SYSFS_ROOT": str(jail.root / "sys"),
    }


def base_conf(plugin_type: str, jail: Jail, name: str = "net") -> dict[str, Any]:
    """A config of `plugin_type` that would work but for the name under test."""
    ipam = {"type": "host-local", "dataDir": str(jail.dir("ipam")), "ranges": [[{"subnet": "10.99.0.0/28"}]]}
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": name, "type": plugin_type, "ipam": ipam}
    if plugin_type == "bridge":
        conf["bridge"] = "secbr0"
    elif plugin_type == "vxlan":
        conf.update(vni=42, underlay="lo")
    elif plugin_type == "host-device":
        conf["device"] = "secdev0"
    elif plugin_type == "sriov":
        conf["deviceID"] = "0000:03:02.1"
    elif plugin_type == "multus":
        del conf["ipam"]
        conf.update(
            delegates=[{"cniVersion": "1.0.0", "name": "cluster", "type": "host-local", "ipam": ipam}],
            cniDir=str(jail.dir("multus")),
            confDir=str(jail.root / "net.d"),
            binDir=str(jail.root / "bin"),
            deviceInfoDir=str(jail.dir("devinfo")),
            podResourcesSocket=str(jail.root / "none.sock"),
        )
    return conf


def run(
    runner: Runner,
    node: Netns,
    pod: Netns,
    jail: Jail,
    plugin_type: str,
    conf: dict[str, Any],
    *,
    container_id: str = "ctr-1",
    ifname: str = "eth0",
    cni_args: str | None = None,
) -> Outcome:
    return runner(
        plugin_type,
        "ADD",
        conf,
        netns=pod.path,
        container_id=container_id,
        ifname=ifname,
        cni_args=cni_args,
        env=plugin_env(jail),
        netns_exec=node.name,
    )


def assert_refused(out: Outcome, code: int, jail: Jail, hostile: str) -> None:
    assert out.code != 0 and out.error_code == code, (out.stdout, out.stderr)
    assert not jail.escaped(), jail.escaped()
    last = Path(hostile).name
    if last not in ("", "..", "."):
        assert not jail.named([last]), jail.named([last])


@pytest.fixture
def node(make_netns: Any) -> Netns:
    ns: Netns = make_netns("secn")
    return ns


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("plugin_type", ALL_TYPES)
def test_network_name(
    direct: Runner, node: Netns, pod: Netns, jail: Jail, plugin_type: str, name: str
) -> None:
    out = run(direct, node, pod, jail, plugin_type, base_conf(plugin_type, jail, name))
    assert_refused(out, 7, jail, name)


@pytest.mark.parametrize("container_id", [*HOSTILE, "ctr\n"])
@pytest.mark.parametrize("plugin_type", ["host-local", "multus"])
def test_container_id(
    direct: Runner, node: Netns, pod: Netns, jail: Jail, plugin_type: str, container_id: str
) -> None:
    """host-local writes it into its store, multus joins it under cniDir (the plan, the cache)."""
    out = run(direct, node, pod, jail, plugin_type, base_conf(plugin_type, jail), container_id=container_id)
    assert_refused(out, 4, jail, container_id)
    assert not (jail.root / "multus").exists() or not list((jail.root / "multus").iterdir())


def test_plan_store_refuses_a_container_id_that_is_a_path(tmp_path: Path) -> None:
    """cniDir: whatever the runner lets through, a plan's path is one plain name inside the directory."""
    store = PlanStore(tmp_path / "multus")
    for container_id in (*HOSTILE, "ctr\n", ""):
        with pytest.raises(InvalidEnvironment):
            store.path(container_id)
    assert store.path("ctr-1") == tmp_path / "multus" / "ctr-1"


@pytest.mark.parametrize("ifname", ["../x", "a/b", "..", "."])
@pytest.mark.parametrize("plugin_type", ["host-local", "multus"])
def test_ifname(direct: Runner, node: Netns, pod: Netns, jail: Jail, plugin_type: str, ifname: str) -> None:
    out = run(direct, node, pod, jail, plugin_type, base_conf(plugin_type, jail), ifname=ifname)
    assert_refused(out, 4, jail, ifname)


def test_data_dir_keeps_the_network_inside(direct: Runner, node: Netns, pod: Netns, jail: Jail) -> None:
    """A good name lands in `dataDir/<name>`; the hostile ones were refused above, here the
    positive half: after ADD and DEL every file host-local made is under dataDir."""
    conf = base_conf("host-local", jail, "net.v1")
    assert run(direct, node, pod, jail, "host-local", conf).code == 0
    out = direct("host-local", "DEL", conf, netns=pod.path, container_id="ctr-1", env=plugin_env(jail))
    assert out.code == 0, out.stdout
    assert not jail.escaped()
    assert (jail.root / "ipam" / "net.v1").is_dir()


# -- multus: NAD names and namespaces, pod names ----------------------------------------------
def multus_conf(jail: Jail) -> dict[str, Any]:
    conf = base_conf("multus", jail)
    conf["manifests"] = str(jail.root / "manifests")
    return conf


ANNOTATIONS = [
    "../../x",
    "ns/../../x",
    "../../x@net1",
    "default/..",
    json.dumps([{"name": "../../x"}]),
    json.dumps([{"name": "net-a", "namespace": "../.."}]),
    json.dumps([{"name": "net-a", "namespace": "default/../../x"}]),
]


@pytest.mark.parametrize("annotation", ANNOTATIONS)
def test_nad_names_and_namespaces(
    direct: Runner, node: Netns, pod: Netns, jail: Jail, annotation: str
) -> None:
    write_manifests(
        jail.root / "manifests",
        [
            pod_manifest("web", networks=annotation),
            nad_manifest("net-a", {"cniVersion": "1.0.0", "type": "x"}),
        ],
    )
    jail.settle()
    out = run(
        direct,
        node,
        pod,
        jail,
        "multus",
        multus_conf(jail),
        cni_args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
    )
    assert_refused(out, 7, jail, "x")
    assert not (jail.root / "multus").exists() or not [
        p for p in (jail.root / "multus").iterdir() if p.is_file()
    ]


@pytest.mark.parametrize(
    ("namespace", "name"), [("default", "../../x"), ("../..", "web"), ("default", "a/b")]
)
def test_pod_names_from_cni_args(
    direct: Runner, node: Netns, pod: Netns, jail: Jail, namespace: str, name: str
) -> None:
    """K8S_POD_NAME/NAMESPACE become the network-status file's path (manifests) and an API URL."""
    write_manifests(jail.root / "manifests", [pod_manifest("web")])
    jail.settle()
    args = f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}"
    out = run(direct, node, pod, jail, "multus", multus_conf(jail), cni_args=args)
    assert_refused(out, 4, jail, name)


def test_manifest_pod_named_like_a_path(direct: Runner, node: Netns, pod: Netns, jail: Jail) -> None:
    """A manifest's own pod name: its network-status file would land at `<status dir>/../../x.json`."""
    manifest = pod_manifest("web")
    manifest["metadata"]["name"] = "../../x"
    write_manifests(jail.root / "manifests", [manifest])
    out = run(
        direct,
        node,
        pod,
        jail,
        "multus",
        multus_conf(jail),
        cni_args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
    )
    jail.settle()
    assert_refused(out, 6, jail, "x.json")


# -- device IDs --------------------------------------------------------------------------------
DEVICE_IDS = ["../../../../escaped", "0000:03:02.1/../../../escaped", "..", "0000:03:02.1\n"]


@pytest.fixture
def decoy(jail: Jail) -> Path:
    """A fake sysfs tree, and next to it a directory shaped like a PCI device with a netdev: a
    lookup that escapes the tree would find a device there."""
    (jail.root / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
    (jail.root / "sys" / "class" / "net").mkdir(parents=True)
    outside = jail.root / "escaped"
    (outside / "net" / "decoy0").mkdir(parents=True)
    (outside / "vendor").write_text("0x8086\n")
    (outside / "sriov_numvfs").write_text("8\n")
    jail.settle()
    return outside


@pytest.mark.parametrize("device_id", DEVICE_IDS)
@pytest.mark.parametrize(("plugin_type", "key"), [("sriov", "deviceID"), ("host-device", "pciBusID")])
def test_device_ids_in_configs(
    direct: Runner,
    node: Netns,
    pod: Netns,
    jail: Jail,
    decoy: Path,
    plugin_type: str,
    key: str,
    device_id: str,
) -> None:
    conf = base_conf(plugin_type, jail)
    conf.pop("device", None)
    conf[key] = device_id
    out = run(direct, node, pod, jail, plugin_type, conf)
    assert_refused(out, 7, jail, device_id)


@pytest.mark.parametrize("device", ["../x", "a/b", ".."])
def test_host_device_name_is_an_ifname(
    direct: Runner, node: Netns, pod: Netns, jail: Jail, device: str
) -> None:
    conf = base_conf("host-device", jail)
    conf["device"] = device
    assert_refused(run(direct, node, pod, jail, "host-device", conf), 7, jail, device)


def test_multus_selection_device_id(direct: Runner, node: Netns, pod: Netns, jail: Jail, decoy: Path) -> None:
    """A pod's `deviceID` request reaches the delegate, which refuses it as a config error."""
    conf = multus_conf(jail)
    conf["binDir"] = str(jail.root / "bin")
    sriov = {"cniVersion": "1.0.0", "type": "sriov", "capabilities": {"deviceID": True}}
    write_manifests(
        jail.root / "manifests",
        [
            pod_manifest("web", networks=[{"name": "fast", "deviceID": "../../../../escaped"}]),
            nad_manifest("fast", sriov),
        ],
    )
    jail.settle()
    out = run(direct, node, pod, jail, "multus", conf, cni_args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web")
    assert out.code != 0 and out.error_code == 7, out.stdout
    assert not jail.escaped(), jail.escaped()


@pytest.mark.parametrize("name", [*DEVICE_IDS, "../../escaped", "escaped/../..", "\x00", ""])
def test_sysfs_lookups_never_leave_the_root(jail: Jail, decoy: Path, name: str) -> None:
    """pycni.hw.sysfs: a PCI address, netdev or auxiliary device name cannot name a path outside."""
    sysfs = SysFs(jail.root / "sys")
    assert not sysfs.exists(name)
    with pytest.raises(DeviceNotFound):
        sysfs.pci_device(name)
    with pytest.raises(DeviceNotFound):
        sysfs.netdevs(name)
    with pytest.raises(DeviceNotFound):
        sysfs.physfn(name)
    if name not in DEVICE_IDS[3:]:  # a newline is a legal (if odd) netdev name
        with pytest.raises(DeviceNotFound):
            sysfs.net_path(name)
        with pytest.raises(DeviceNotFound):
            sysfs.auxiliary_netdevs(name)
    assert sysfs.kernel_path_netdevs(f"/sys/devices/{name}") is None or name in ("", "..")
    assert sysfs.kernel_path_netdevs("/sys/devices/../../escaped") is None


def test_device_info_paths_stay_in_their_directory(tmp_path: Path) -> None:
    """Device-plugin device IDs and resource names, and a network's namespace and name, are
    flattened into one file name inside the device-info directory."""
    for hostile in (*HOSTILE, "/abs/path"):
        assert devinfo.dp_path(tmp_path, hostile, hostile).parent == tmp_path
        assert devinfo.cni_path(tmp_path, hostile, hostile, "ctr-1", "net1").parent == tmp_path
