"""Pure parts of the device plugin over a fake sysfs tree (standing in for SR-IOV hardware):
the sysfs module, discovery, config validation, selectors with VF ranges, preferred allocation."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from pycni.cni.logs import setup_json_logging
from pycni.cni.settings import Settings
from pycni.device_plugin.pools import InUse
from pycni.device_plugin.preferred import preferred
from pycni.hw.discovery import Device, discover, remember
from pycni.hw.linkwatch import LinkState
from pycni.hw.sysfs import DeviceNotFound, SysFs
from pycni.k8s.pools.config import ConfigError, parse_config
from pycni.k8s.pools.membership import assign, health, pools_of
from pycni.k8s.pools.ranges import parse_pf_ref
from tests.helpers.fake_sysfs import FakeSysfs, build_sriov_node


@pytest.fixture
def tree(tmp_path: Path) -> SysFs:
    node = build_sriov_node(tmp_path / "sys")
    node.sysfs.add_pci("0000:00:03.0", vendor="1af4", device="1041", driver="virtio-pci", netdevs=["eth0"])
    node.sysfs.add_pci("0000:00:04.0", class_code=0x010802, driver="nvme")  # not a NIC
    node.sysfs.add_pci("0000:05:00.0", device="10fb", driver="vfio-pci", iommu_group=7, numa_node=1)
    node.sysfs.add_pci(
        "0000:06:00.0", class_code=0x120000, vendor="8086", device="37c9", driver="uio_pci_generic"
    )
    node.sysfs.add_uio("0000:06:00.0", "uio3")
    return SysFs(tmp_path / "sys")


def test_sysfs_reads_vf_pf_and_netdev_facts(tree: SysFs) -> None:
    vf = tree.pci_device("0000:3b:02.6")
    assert (vf.physfn, vf.vf_index, vf.driver, vf.numa_node) == ("0000:3b:00.0", 6, "vfio-pci", 0)
    assert tree.is_userspace_driver(vf.address)
    assert vf.netdevs == () and vf.iommu_group is not None and vf.sriov_totalvfs is None
    pf = tree.pci_device("0000:3b:00.0")
    assert (pf.physfn, pf.sriov_numvfs, pf.sriov_totalvfs, pf.netdevs) == (None, 8, 64, ("ens1f0",))
    assert tree.virtfns("0000:3b:00.0")[3] == "0000:3b:02.3"
    assert tree.netdev_pci_address("ens1f0v3") == "0000:3b:02.3"
    assert tree.netdev("ens1f0").link_type == "ether"
    assert tree.pci_device("0000:06:00.0").uio == ("uio3",)
    assert tree.numa_node("0000:00:03.0") is None  # -1 means no affinity
    with pytest.raises(DeviceNotFound):
        tree.pci_device("0000:ff:00.0")


def test_sysfs_root_from_env(tmp_path: Path) -> None:
    assert Settings.from_env({"PYCNI_SYSFS_ROOT": str(tmp_path)}).sysfs_root == tmp_path
    assert Settings.from_env({}).sysfs_root == Path("/sys")


def test_discovery_skips_pfs_with_vfs_non_nics_and_default_route(tree: SysFs) -> None:
    found = {d.address: d for d in discover(tree, exclude_netdevs={"eth0"})}
    assert "0000:3b:00.0" not in found and "0000:00:04.0" not in found and "0000:00:03.0" not in found
    assert len([d for d in found.values() if d.pf_address]) == 32
    assert found["0000:05:00.0"].pf_address is None and found["0000:06:00.0"].base_class == 0x12
    assert found["0000:3c:02.5"].pf_name == "ens1f1" and found["0000:3c:02.5"].vf_index == 5
    assert "0000:00:03.0" in {d.address for d in discover(tree)}


def test_remember_keeps_a_vanished_netdev_but_follows_a_rebind(tree: SysFs, tmp_path: Path) -> None:
    before = {d.address: d for d in discover(tree)}
    fake = FakeSysfs(tmp_path / "sys")
    fake.remove_netdev("0000:3b:02.0", "ens1f0v0")
    fake.remove_netdev("0000:3b:02.1", "ens1f0v1")
    fake.bind("0000:3b:02.1", "vfio-pci")
    after = {d.address: d for d in remember(discover(tree), before)}
    assert after["0000:3b:02.0"].netdevs == ("ens1f0v0",) and after["0000:3b:02.0"].netdevs_now == ()
    assert health(after["0000:3b:02.0"], None) == "netdev ens1f0v0 is gone"
    assert after["0000:3b:02.1"].driver == "vfio-pci" and after["0000:3b:02.1"].netdevs == ()


@pytest.mark.parametrize(
    ("text", "pf", "indexes"),
    [("ens1f0", "ens1f0", None), ("ens1f0#3", "ens1f0", {3}), ("ens1f0#0,2-4,9", "ens1f0", {0, 2, 3, 4, 9})],
)
def test_vf_range_syntax(text: str, pf: str, indexes: set[int] | None) -> None:
    ref = parse_pf_ref(text)
    assert ref.pf == pf and (ref.vf_indexes == (None if indexes is None else frozenset(indexes)))


@pytest.mark.parametrize("bad", ["ens1f0#", "ens1f0#4-2", "ens1f0#a", "#1"])
def test_bad_vf_range_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"ens1f0|empty"):
        parse_pf_ref(bad)


def assigned(tree: SysFs, resource_list: list[dict[str, object]]) -> dict[str, list[str]]:
    conf = parse_config({"resourceList": resource_list})
    out = assign(pools_of(conf, "p.io"), discover(tree))
    return {res.split("/")[1]: [d.address for d in devs] for res, devs in out.items()}


def test_selectors_single_object_and_first_match_wins(tree: SysFs) -> None:
    pools = assigned(
        tree,
        [
            {
                "resourceName": "first",
                "selectors": {"vendors": ["8086"], "devices": ["154c"], "pfNames": ["ens1f1#6-7"]},
            },
            {
                "resourceName": "second",
                "selectors": [{"pfNames": ["ENS1F1"]}, {"pciAddresses": ["0000:05:00.0"]}],
            },
            {
                "resourceName": "accel",
                "deviceType": "accelerator",
                "selectors": {"drivers": ["uio_pci_generic"]},
            },
            {
                "resourceName": "mlx_root",
                "selectors": {"rootDevices": ["0000:87:00.0#1,3"], "linkTypes": ["ether"]},
            },
        ],
    )
    assert pools["first"] == ["0000:3c:02.6", "0000:3c:02.7"]
    assert pools["second"] == ["0000:05:00.0"] + [f"0000:3c:02.{i}" for i in range(6)]
    assert pools["accel"] == ["0000:06:00.0"]
    assert pools["mlx_root"] == ["0000:87:02.1", "0000:87:02.3"]


def test_unsupported_selector_matches_nothing(tree: SysFs) -> None:
    pools = assigned(
        tree, [{"resourceName": "ddp", "selectors": {"drivers": ["iavf"], "ddpProfiles": ["gtp"]}}]
    )
    assert pools["ddp"] == []
    conf = parse_config(
        {"resourceList": [{"resourceName": "r", "selectors": {"isRdma": True, "pKeys": ["0x1"]}}]}
    )
    assert conf.resource_list[0].unsupported() == ["selectors[0].pKeys", "selectors[0].isRdma"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"resourceList": [{"resourceName": "ok"}, {"resourceName": "bad name"}]},
            r"resourceList\[1\] \(bad name\)",
        ),
        (
            {"resourceList": [{"resourceName": "a", "selectors": [{}, {"pfNames": ["ens1f0#5-1"]}]}]},
            r"resourceList\[0\] \(a\): selectors\[1\]\.pfNames.*empty",
        ),
        ({"resourceList": [{"resourceName": "a", "selectors": {"vendors": ["intel"]}}]}, r"vendors.*hex"),
        (
            {"resourceList": [{"resourceName": "a", "deviceType": "gpu"}]},
            r"resourceList\[0\] \(a\): deviceType",
        ),
        (
            {"resourceList": [{"resourceName": "a"}, {"resourceName": "a"}]},
            r"resourceList\[1\].*already defined",
        ),
        ({"resourceList": []}, "resourceList is empty"),
    ],
)
def test_invalid_config_names_entry_and_reason(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, source="config.json")


def dev(address: str, pf: str, numa: int | None) -> Device:
    return Device(
        address, "8086", "154c", 2, "iavf", (), numa, None, False, pf, (), 0, None, None, (), "iavf", ()
    )


DEVS = {
    d.address: d
    for d in [dev(f"0000:3b:02.{i}", "0000:3b:00.0", 0) for i in range(4)]
    + [dev(f"0000:3c:02.{i}", "0000:3c:00.0", 0) for i in range(2)]
    + [dev(f"0000:86:02.{i}", "0000:86:00.0", 1) for i in range(6)]
}


def test_preferred_keeps_one_numa_node_and_must_include() -> None:
    avail = sorted(DEVS)
    got = preferred(avail, ["0000:3c:02.1"], 3, DEVS)
    assert got[0] == "0000:3c:02.1" and {DEVS[d].numa_node for d in got} == {0} and len(got) == 3
    got = preferred(avail, [], 5, DEVS)
    assert len({DEVS[d].numa_node for d in got}) == 1 and len(got) == 5
    got = preferred(avail[2:], [], 5, DEVS)  # node 0 has 4 left, only node 1 can hold 5
    assert {DEVS[d].numa_node for d in got} == {1} and len(got) == 5
    got = preferred(avail, [], 8, DEVS)  # more than any node: fill from the fullest, then the next
    assert len(got) == 8 and len(set(got)) == 8


def test_preferred_pack_and_spread_policies() -> None:
    avail = [d for d in sorted(DEVS) if DEVS[d].numa_node == 0]
    packed = preferred(avail, [], 3, DEVS, "pack")
    assert {DEVS[d].pf_address for d in packed} == {"0000:3b:00.0"}
    spread = preferred(avail, [], 3, DEVS, "spread")
    assert {DEVS[d].pf_address for d in spread} == {"0000:3b:00.0", "0000:3c:00.0"}
    assert preferred(avail, avail[:4], 2, DEVS) == avail[:2]  # must-include beyond size is cut


def test_health_rules() -> None:
    vf = dataclasses.replace(dev("0000:3b:02.0", "0000:3b:00.0", 0), netdevs=("v0",), netdevs_now=("v0",),
                             pf_netdevs=("pf",))  # fmt: skip
    up = LinkState(up=True, carrier=True)
    assert health(vf, {"v0": up, "pf": up}) is None
    assert health(vf, {"v0": up, "pf": LinkState(up=True, carrier=False)}) == "PF pf has no carrier"
    assert health(vf, {"pf": up}) == "netdev v0 is gone"
    assert health(vf, {"pf": up}, in_use=True) is None
    assert health(dataclasses.replace(vf, driver_now=None), {"v0": up, "pf": up}) == "no driver bound"
    no_carrier = LinkState(up=True, carrier=False)
    assert health(vf, {"v0": no_carrier, "pf": up}) == "netdev v0 is up without carrier"
    assert health(vf, {"v0": LinkState(up=False, carrier=False), "pf": up}) is None  # idle, unconfigured
    assert health(vf, {"v0": no_carrier, "pf": up}, in_use=True) is None


def test_an_allocated_vf_is_in_use_until_its_netdev_comes_back() -> None:
    vf = dataclasses.replace(dev("0000:3b:02.0", "0000:3b:00.0", 0), netdevs=("v0",), netdevs_now=("v0",))
    away = dataclasses.replace(vf, netdevs_now=())
    in_use = InUse()
    assert not in_use.check(vf)
    in_use.mark([vf.address])
    assert in_use.check(vf)  # allocated, the CNI has not moved its netdev yet
    assert in_use.check(away) and in_use.check(away)  # in the pod
    assert in_use.check(vf)  # back: this look still counts it (its last), then it is free
    assert not in_use.check(vf) and not in_use.check(away)


def test_a_vf_read_back_from_the_kubelet_is_in_use_though_its_netdev_was_never_seen() -> None:
    """After a restart a VF in a pod has no known netdev: it is away until a netdev shows up."""
    in_pod = dev("0000:3b:02.1", "0000:3b:00.0", 0)  # netdevs=(), netdevs_now=()
    back = dataclasses.replace(in_pod, netdevs=("v1",), netdevs_now=("v1",))
    in_use = InUse()
    in_use.restore([in_pod.address])
    assert in_use.check(in_pod) and in_use.check(in_pod)
    assert in_use.check(back)
    assert not in_use.check(back) and not in_use.check(dataclasses.replace(back, netdevs_now=()))
    not_yet_moved = dataclasses.replace(back, address="0000:3b:02.2")
    in_use.restore([not_yet_moved.address])
    assert in_use.check(not_yet_moved)  # its netdev is still here: held, not released
    assert in_use.check(dataclasses.replace(not_yet_moved, netdevs_now=()))


def test_allocate_uio_and_vhost_net_device_nodes(tree: SysFs) -> None:
    from pycni.device_plugin.allocate import Answers

    conf = parse_config(
        {"resourceList": [{"resourceName": "qat", "deviceType": "accelerator",
                           "selectors": {"drivers": ["uio_pci_generic"], "needVhostNet": True}}]}
    )  # fmt: skip
    pool = pools_of(conf, "p.io")[0]
    devices = [d for d in discover(tree) if d.address == "0000:06:00.0"]
    out = Answers(pool, devices, Path("/run/devinfo")).container([d.address for d in devices])
    assert [(n.container_path, n.host_path) for n in out.devices] == [
        ("/dev/uio3", "/dev/uio3"), ("/dev/vhost-net", "/dev/vhost-net"), ("/dev/net/tun", "/dev/net/tun")
    ]  # fmt: skip
    assert out.envs["PCIDEVICE_P_IO_QAT"] == "0000:06:00.0"


def test_precomputed_answers_are_what_building_each_call_gave(tree: SysFs) -> None:
    """The `_INFO` env joined from per-device pieces is byte for byte the document encoded whole
    (sorted by address, duplicates once), and each device-info file is `devinfo.write`'s."""
    from pycni.device_plugin.allocate import Answers
    from pycni.hw import devinfo
    from pycni.k8s.pools.container import info_entry

    conf = parse_config({"resourceList": [{"resourceName": "all", "selectors": {}}]})
    pool = pools_of(conf, "p.io")[0]
    devices = discover(tree)
    assert len(devices) >= 3
    answers = Answers(pool, devices, Path("/run/devinfo"))
    picked = [devices[2].address, devices[0].address, devices[1].address, devices[0].address]
    out = answers.container(picked)
    by_address = {d.address: d for d in devices}
    whole = {a: info_entry(pool, by_address[a], False) for a in picked}
    assert out.envs["PCIDEVICE_P_IO_ALL_INFO"] == json.dumps(whole, sort_keys=True, separators=(",", ":"))
    assert out.envs["PCIDEVICE_P_IO_ALL"] == ",".join(picked)
    first = answers.by_id[devices[0].address]
    assert first.devinfo_path == devinfo.dp_path(Path("/run/devinfo"), pool.resource, devices[0].address)
    assert first.devinfo_data == devinfo.encode(devinfo.pci_info(devices[0].address, devices[0].pf_address))


def test_sysfs_import_is_stdlib_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import pycni.hw.sysfs; heavy = {'pyroute2', 'grpc', 'pydantic', 'pyudev'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_sysfs_auxiliary_devices(tmp_path: Path) -> None:
    fake = FakeSysfs(tmp_path / "sys")
    fake.add_pci("0000:86:00.0", vendor="15b3", device="1017", driver="mlx5_core", netdevs=["ens2f0"])
    fake.add_aux("0000:86:00.0", "mlx5_core.sf.2", driver="mlx5_core.sf_driver")
    fake.add_pci("0000:87:00.0", vendor="15b3", device="1017", driver="mlx5_core")
    fake.add_aux("0000:87:00.0", "mlx5_core.eth.0")
    sysfs = SysFs(tmp_path / "sys")
    assert [a.name for a in sysfs.auxiliary_devices()] == ["mlx5_core.eth.0", "mlx5_core.sf.2"]
    (sf,) = sysfs.auxiliary_devices("0000:86:00.0")
    assert (sf.parent_pci, sf.driver) == ("0000:86:00.0", "mlx5_core.sf_driver")


def test_json_log_lines_carry_extras_as_keys(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("pycni")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        setup_json_logging(logging.INFO)
        logging.getLogger("pycni.device_plugin.test").info("pool %s", "updated", extra={"resource": "p.io/a"})
        logging.getLogger("pycni.device_plugin.test").debug("not at INFO")
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["ts"].endswith("Z")
    assert {k: v for k, v in entry.items() if k != "ts"} == {
        "level": "info",
        "logger": "pycni.device_plugin.test",
        "msg": "pool updated",
        "resource": "p.io/a",
    }


def test_devinfo_files_are_written_again_only_when_someone_changed_them(tmp_path: Path) -> None:
    from pycni.hw.devinfo import WrittenFiles

    files, path, data = WrittenFiles(), tmp_path / "dev.json", b'{"pci":{}}'
    files.ensure(path, data)
    first = path.stat().st_ino
    files.ensure(path, data)
    assert path.stat().st_ino == first  # left as it was: not replaced by a new file
    path.unlink()
    files.ensure(path, data)
    assert path.read_bytes() == data
    other = tmp_path / "other"
    other.write_bytes(b"not ours!!")
    other.replace(path)
    files.ensure(path, data)
    assert path.read_bytes() == data


def test_a_pool_state_given_the_same_devices_again_is_unchanged(tree: SysFs, tmp_path: Path) -> None:
    """Streams wake, and answers are rebuilt, only when the pool's devices or health change."""
    from pycni.device_plugin.server import PoolState
    from pycni.k8s.pools.membership import PoolDevice

    pool = pools_of(parse_config({"resourceList": [{"resourceName": "all", "selectors": {}}]}), "p.io")[0]
    devices = [PoolDevice(d, None) for d in discover(tree)]
    state = PoolState(pool, tmp_path)
    assert state.update(pool, devices)
    version, _ = state.snapshot()
    answers = state.answers()[1]
    assert not state.update(pool, [PoolDevice(d.device, None) for d in devices])
    assert state.snapshot()[0] == version and state.answers()[1] is answers
    assert state.update(pool, [PoolDevice(devices[0].device, "link down"), *devices[1:]])
    assert state.snapshot()[0] == version + 1
