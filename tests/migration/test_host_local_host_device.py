"""host-local and host-device: ADD by one side (the Debian Go plugins or ours), CHECK and DEL by
the other, in every version the reference speaks; the node is left exactly as before the ADD.

Rolling back (ours ADD, reference DEL) runs `pycni uninstall --node` in between, as the
procedure in docs/kubernetes.md does: our host-device records are ours to remove.
"""

from __future__ import annotations

import dataclasses
import subprocess
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import has_check
from tests.helpers.netns import Netns, unique
from tests.migration.node import Side, Snapshot, assert_as_before, link_details, snapshot, uninstall

GO_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
DIRECTIONS = [("go", "pycni"), ("pycni", "go")]


def ipam(data: Path, version: str) -> dict[str, Any]:
    ranges = [[{"subnet": "10.233.0.0/24"}]]
    if version not in ("0.1.0", "0.2.0"):
        ranges.append([{"subnet": "fd00:233::/64"}])
    return {"type": "host-local", "dataDir": str(data / "ipam"), "ranges": ranges}


@pytest.mark.parametrize("version", GO_VERSIONS)
@pytest.mark.parametrize(("adder", "remover"), DIRECTIONS)
def test_host_local(
    sides: dict[str, Side], node: Netns, make_netns: Any, data: Path, adder: str, remover: str, version: str
) -> None:
    conf = {"cniVersion": version, "name": "hl-net", "type": "host-local", **ipam(data, version)}
    conf["ipam"] = ipam(data, version)
    pod = make_netns("mpod")
    before = snapshot(node, pod, data)
    cid = unique("ctr", 20)
    result = sides[adder]("host-local", "ADD", conf, pod, node, cid).ok()
    assert len(list((data / "ipam" / "hl-net").glob("10.*"))) == 1
    if has_check(version):
        sides[remover]("host-local", "CHECK", {**conf, "prevResult": result}, pod, node, cid).ok()
    sides[remover]("host-local", "DEL", conf, pod, node, cid).ok()
    assert_as_before(before, snapshot(node, pod, data))


def stand_in(node: Netns, sink: Netns) -> str:
    """A veth end in the node named like a NIC (down, no alias); its peer parked in `sink`."""
    name = unique("hd", 12)
    sink.run("ip", "link", "add", unique("hp", 12), "type", "veth", "peer", "name", name, "netns", node.name)
    return name


@pytest.mark.parametrize("version", GO_VERSIONS)
@pytest.mark.parametrize(("adder", "remover"), DIRECTIONS)
def test_host_device(
    sides: dict[str, Side], node: Netns, make_netns: Any, data: Path, adder: str, remover: str, version: str
) -> None:
    device = stand_in(node, make_netns("msink"))
    conf: dict[str, Any] = {"cniVersion": version, "name": "hd-net", "type": "host-device", "device": device}
    conf["ipam"] = ipam(data, version)
    pod = make_netns("mpod")
    before = snapshot(node, pod, data)
    cid = unique("ctr", 20)
    result = sides[adder]("host-device", "ADD", conf, pod, node, cid, ifname="net1").ok()
    assert "net1" in pod.link_names() and pod.links()["net1"].get("ifalias") == device
    if adder == "pycni":
        assert "record removed" in uninstall(sides["pycni"], node, data)
    with_prev = {**conf, "prevResult": result}
    if has_check(version):
        sides[remover]("host-device", "CHECK", with_prev, pod, node, cid, ifname="net1").ok()
    sides[remover]("host-device", "DEL", with_prev, pod, node, cid, ifname="net1").ok()
    after = snapshot(node, pod, data)
    if remover == "go":
        after = without_alias_of(after, device)
    assert_as_before(before, after)


def without_alias_of(state: Snapshot, device: str) -> Snapshot:
    """`state` as if `device` had no ifalias: the Debian reference (1.1.1) leaves the alias it
    set at ADD on the device after its DEL, for its own attachments as for ours (the control
    test below shows it); later versions clear it."""
    links = frozenset((n, "" if n == device and a == device else a, up) for n, a, up in state.node_links)
    return dataclasses.replace(state, node_links=links)


def test_control_the_reference_leaves_the_alias_after_its_own_del(
    go: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    device = stand_in(node, make_netns("msink"))
    conf = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": device}
    pod = make_netns("mpod")
    go("host-device", "ADD", conf, pod, node, "ctl-ctr", ifname="net1").ok()
    go("host-device", "DEL", conf, pod, node, "ctl-ctr", ifname="net1").ok()
    assert node.links()[device].get("ifalias") == device


def test_our_del_gives_back_a_device_the_reference_attached_whose_netns_is_gone(
    ours: Side, go: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """The kernel returns a physical device to the node under its pod name (here, played by
    moving it); the reference's DEL then fails on the netns (plugins#1196), ours restores it."""
    device = stand_in(node, make_netns("msink"))
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": device}
    conf["ipam"] = ipam(data, "1.0.0")
    pod = make_netns("mpod")
    before = snapshot(node, pod, data)
    go("host-device", "ADD", conf, pod, node, "gone-ctr", ifname="net1").ok()
    pod.run("ip", "link", "set", "net1", "netns", node.name)
    ours("host-device", "DEL", conf, None, node, "gone-ctr", ifname="net1", netns="").ok()
    assert_as_before(before, snapshot(node, pod, data))


def reservations(data: Path, network: str) -> list[str]:
    """host-local's reservation files (named by address) of `network`."""
    found = []
    for path in (data / "ipam" / network).iterdir():
        try:
            found.append(str(ip_address(path.name)))
        except ValueError:
            continue
    return sorted(found)


def test_our_gc_releases_the_references_stale_reservations_and_keeps_the_valid(
    ours: Side, go: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    conf = {"cniVersion": "1.0.0", "name": "hl-net", "type": "host-local", "ipam": ipam(data, "1.0.0")}
    pod = make_netns("mpod")
    kept = go("host-local", "ADD", conf, pod, node, "keep-ctr").ok()
    go("host-local", "ADD", conf, pod, node, "lose-ctr").ok()
    assert len(reservations(data, "hl-net")) == 4  # two pods, two families
    valid = [{"containerID": "keep-ctr", "ifname": "eth0"}]
    gc = {**conf, "cniVersion": "1.1.0", "cni.dev/valid-attachments": valid}
    out = ours.runner(
        "host-local", "GC", gc, container_id=None, ifname=None, netns_exec=node.name, env=ours.env
    )
    assert out.code == 0, out.stdout
    assert reservations(data, "hl-net") == sorted(str(ip_interface(ip["address"]).ip) for ip in kept["ips"])
    ours("host-local", "CHECK", {**conf, "prevResult": kept}, pod, node, "keep-ctr").ok()
    ours("host-local", "DEL", conf, pod, node, "keep-ctr").ok()
    assert reservations(data, "hl-net") == []


def test_our_check_and_del_after_uninstall_give_back_the_device(
    ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """Rolling back runs `pycni uninstall --node` while our plugins still serve: a device ours
    lent, its record dropped, is CHECKed and given back by ours as the reference would."""
    device = stand_in(node, make_netns("msink"))
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": device}
    conf["ipam"] = ipam(data, "1.0.0")
    pod = make_netns("mpod")
    before = snapshot(node, pod, data)
    result = ours("host-device", "ADD", conf, pod, node, "handed-ctr", ifname="net1").ok()
    assert "record removed" in uninstall(ours, node, data)
    with_prev = {**conf, "prevResult": result}
    ours("host-device", "CHECK", with_prev, pod, node, "handed-ctr", ifname="net1").ok()
    ours("host-device", "DEL", with_prev, pod, node, "handed-ctr", ifname="net1").ok()
    assert_as_before(before, snapshot(node, pod, data))


def test_uninstall_gives_back_a_device_whose_pod_died_before_its_del(
    ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """The kernel returns a physical device to the node under its pod name when the netns dies
    (played by moving it); the reference's DEL cannot find it then (plugins#1196), so uninstall,
    which drops the record that names it, gives it back first."""
    device = stand_in(node, make_netns("msink"))
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": device}
    pod = make_netns("mpod")
    before = link_details(node)
    ours("host-device", "ADD", conf, pod, node, "dead-ctr", ifname="net1").ok()
    pod.run("ip", "link", "set", "net1", "netns", node.name)
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    assert f"device given back as {device}" in uninstall(ours, node, data)
    assert link_details(node) == before


def test_uninstall_keeps_the_record_of_a_device_not_back_from_a_dying_netns_until_it_is(
    ours: Side, node: Netns, make_netns: Any, data: Path
) -> None:
    """A pod's netns file is gone but its namespace lives on (a process still in it): the device is
    in neither. Dropping the record would leave nothing that names the device when it returns."""
    device = stand_in(node, make_netns("msink"))
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "hd-net", "type": "host-device", "device": device}
    pod, limbo = make_netns("mpod"), make_netns("mlimbo")  # limbo: the dying namespace, still held
    before = link_details(node)
    ours("host-device", "ADD", conf, pod, node, "dying-ctr", ifname="net1").ok()
    pod.run("ip", "link", "set", "net1", "netns", limbo.name)
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    assert "not back in the node yet" in uninstall(ours, node, data)
    limbo.run("ip", "link", "set", "net1", "netns", node.name)  # the namespace died at last
    assert f"device given back as {device}" in uninstall(ours, node, data)
    assert link_details(node) == before
