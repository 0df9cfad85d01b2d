"""A netdev handed to a pod and given back: selection, rename, restore, IPAM, claims, orphans.

Each test builds its own node netns with veth stand-ins and runs the installed executable inside
it (`ip netns exec`), with its own state directory, so tests run in parallel and twice in a row.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.cni import ALL_SPEC_VERSIONS, has_check, has_interfaces
from tests.helpers.netns import Netns, delete_netns, unique
from tests.helpers.poll import wait_until
from tests.host_device.helpers import Node, conf, fake_pci, link, present


def added(node: Node, pod: Netns, cid: str = "ctr-a", **keys: Any) -> dict[str, Any]:
    out = node.cni("ADD", conf(**keys), pod, container_id=cid)
    result: dict[str, Any] = out.ok()
    return result


def test_add_by_name_renames_and_del_restores_everything(node: Node) -> None:
    dev = node.stand_in(mtu=1400, alias="uplink to rack 3", altname=unique("alt"))
    before = link(node.ns, dev)
    assert before is not None
    pod = node.pod()
    result = added(node, pod, device=dev)
    inside = link(pod, "net1")
    assert inside is not None and inside["address"] == before["address"]
    assert "UP" in inside["flags"] and inside.get("altnames") is None
    assert link(node.ns, dev) is None
    assert result["interfaces"] == [
        {"name": "net1", "mac": before["address"], "mtu": 1400, "sandbox": pod.path}
    ]
    pod.run("ip", "link", "set", "net1", "mtu", "1300")
    pod.run("ip", "link", "set", "net1", "address", "0a:58:00:00:00:42")

    node.cni("DEL", conf(device=dev), pod).ok()
    after = link(node.ns, dev)
    assert after is not None, "device not back under its original name"
    assert (after["mtu"], after["address"], after.get("ifalias")) == (
        1400,
        before["address"],
        "uplink to rack 3",
    )
    assert after["altnames"] == before["altnames"] and "UP" in after["flags"]
    assert link(pod, "net1") is None
    assert node.state_files() == []
    assert node.cni("DEL", conf(device=dev), pod).code == 0, "second DEL must succeed"


def test_a_device_that_was_down_stays_down(node: Node) -> None:
    dev = node.stand_in(up=False)
    pod = node.pod()
    added(node, pod, device=dev)
    node.cni("DEL", conf(device=dev), pod).ok()
    after = link(node.ns, dev)
    assert after is not None and "UP" not in after["flags"]


def test_add_by_mac(node: Node) -> None:
    node.stand_in()
    dev = node.stand_in()
    mac = present(node.ns, dev)["address"]
    pod = node.pod()
    added(node, pod, hwaddr=mac.upper())
    assert present(pod, "net1")["address"] == mac
    assert link(node.ns, dev) is None


def test_add_by_kernel_path(node: Node) -> None:
    dev = node.stand_in()
    kernelpath = fake_pci(node.tmp / "sys", "0000:05:00.0", "ixgbe", (dev,))
    pod = node.pod()
    result = added(node, pod, kernelpath=kernelpath)
    assert link(pod, "net1") is not None and link(node.ns, dev) is None
    assert result["interfaces"][0]["name"] == "net1"
    node.cni("DEL", conf(kernelpath=kernelpath), pod).ok()
    assert link(node.ns, dev) is not None


def test_missing_device_is_a_clear_error(node: Node) -> None:
    pod = node.pod()
    out = node.cni("ADD", conf(device="hdnosuchdev0"), pod)
    assert out.code != 0 and "no device matching device=hdnosuchdev0" in out.json["msg"]
    assert node.state_files() == []


def test_ifname_taken_in_pod_is_refused_and_del_leaves_that_link(node: Node) -> None:
    dev = node.stand_in()
    pod = node.pod()
    pod.run("ip", "link", "add", "net1", "type", "veth", "peer", "name", "other1")
    out = node.cni("ADD", conf(device=dev), pod)
    assert out.code != 0 and "already exists" in out.json["msg"]
    node.cni("DEL", conf(device=dev), pod).ok()
    assert link(pod, "net1") is not None, "DEL moved a link that was never ours"
    assert link(node.ns, dev) is not None


@pytest.mark.parametrize("cni_version", ALL_SPEC_VERSIONS)
def test_ipam_addresses_in_pod_check_and_release(node: Node, cni_version: str) -> None:
    dev = node.stand_in()
    pod = node.pod()
    cfg = conf(cni_version, ipam={}, device=dev)
    result = node.cni("ADD", cfg, pod).ok()
    assert node.ns.links().get(dev) is None
    assert pod.addrs("net1") == {"10.77.3.5/24"}
    assert any(r["dst"] == "10.78.0.0/16" and r.get("gateway") == "10.77.3.1" for r in pod.routes())
    if has_interfaces(cni_version):
        assert result["ips"][0]["address"] == "10.77.3.5/24"
        assert result["ips"][0]["interface"] == 0
        assert result["dns"] == {"nameservers": ["10.77.3.53"]}
    if has_check(cni_version):
        node.cni("CHECK", {**cfg, "prevResult": result}, pod).ok()
        pod.run("ip", "addr", "del", "10.77.3.5/24", "dev", "net1")
        out = node.cni("CHECK", {**cfg, "prevResult": result}, pod)
        assert out.code != 0 and "10.77.3.5/24 is missing" in out.json["msg"]
    node.cni("DEL", cfg, pod).ok()
    assert [c["cmd"] for c in node.ipam_calls() if c["cmd"] in ("ADD", "DEL")] == ["ADD", "DEL"]
    assert link(node.ns, dev) is not None


def test_failed_ipam_puts_the_device_back(node: Node) -> None:
    dev = node.stand_in(mtu=1450, altname=unique("alt"))
    before = present(node.ns, dev)
    pod = node.pod()
    out = node.cni("ADD", conf(ipam={"failOn": "ADD"}, device=dev), pod)
    assert out.error_code == 11 and "ipam stand-in refused ADD" in out.json["msg"]
    after = link(node.ns, dev)
    assert after is not None and link(pod, "net1") is None
    assert (after["mtu"], after["altnames"], "UP" in after["flags"]) == (1450, before["altnames"], True)
    assert node.state_files() == []
    assert [c["cmd"] for c in node.ipam_calls()] == ["ADD", "DEL"]


def test_device_in_use_by_another_pod_is_refused(node: Node) -> None:
    dev = node.stand_in()
    first, second = node.pod(), node.pod()
    added(node, first, cid="ctr-first", device=dev)
    out = node.cni("ADD", conf(device=dev), second, container_id="ctr-second")
    assert out.code != 0
    assert "already in use by container ctr-first" in out.json["msg"], out.json["msg"]
    assert link(first, "net1") is not None and link(second, "net1") is None
    node.cni("DEL", conf(device=dev), second, container_id="ctr-second").ok()
    assert link(first, "net1") is not None, "DEL of the refused pod took the device away"


def test_del_after_pod_netns_deleted_restores_the_name(node: Node) -> None:
    """The kernel returns a physical NIC to the node under its pod-side name when a netns dies,
    but destroys a veth. So we play the kernel: move the stand-in back into the node as `net1`,
    then delete the pod netns, then DEL with the now missing netns path."""
    dev = node.stand_in(mtu=1420, alias="orig alias")
    pod = node.pod()
    added(node, pod, ipam={}, device=dev)
    pod.run("ip", "link", "set", "net1", "netns", node.ns.name)
    node_links = node.ns.links()
    assert "net1" in node_links and node_links["net1"].get("ifalias") == dev
    delete_netns(pod)
    out = node.cni("DEL", conf(ipam={}, device=dev), None, netns=pod.path)
    out.ok()
    after = link(node.ns, dev)
    assert after is not None and link(node.ns, "net1") is None
    assert (after["mtu"], after.get("ifalias")) == (1420, "orig alias")
    assert node.state_files() == []
    assert [c["cmd"] for c in node.ipam_calls()] == ["ADD", "DEL"], "IPAM must be released"


def test_del_with_netns_gone_and_device_destroyed_succeeds_twice(node: Node) -> None:
    dev = node.stand_in()
    pod = node.pod()
    added(node, pod, ipam={}, device=dev)
    delete_netns(pod)
    wait_until(lambda: link(node.ns, dev) is None and not _peer_left(node), what="veth destroyed")
    node.cni("DEL", conf(ipam={}, device=dev), None, netns=pod.path).ok()
    node.cni("DEL", conf(ipam={}, device=dev), None, netns=pod.path).ok()
    assert [c["cmd"] for c in node.ipam_calls()].count("DEL") == 2


def _peer_left(node: Node) -> bool:
    return any(name.startswith("hp") for name in node.sink.link_names())


def test_del_with_empty_netns_uses_the_recorded_one(node: Node) -> None:
    dev = node.stand_in()
    pod = node.pod()
    added(node, pod, device=dev)
    node.cni("DEL", conf(device=dev), None, netns="").ok()
    assert link(node.ns, dev) is not None and link(pod, "net1") is None


def test_del_finds_a_device_the_pod_renamed(node: Node) -> None:
    dev = node.stand_in()
    pod = node.pod()
    added(node, pod, device=dev)
    pod.run("ip", "link", "set", "net1", "down")
    pod.run("ip", "link", "set", "net1", "name", "renamed0")
    node.cni("DEL", conf(device=dev), pod).ok()
    assert link(node.ns, dev) is not None and link(pod, "renamed0") is None


def test_gc_releases_only_invalid_attachments(node: Node) -> None:
    keep_dev, drop_dev = node.stand_in(), node.stand_in()
    keep_pod, drop_pod = node.pod(), node.pod()
    added(node, keep_pod, cid="ctr-keep", ipam={}, device=keep_dev)
    added(node, drop_pod, cid="ctr-drop", ipam={}, device=drop_dev)
    drop_pod.run("ip", "link", "set", "net1", "netns", node.ns.name)  # the kernel's part, see above
    delete_netns(drop_pod)
    gc = {**conf(ipam={}), "cni.dev/valid-attachments": [{"containerID": "ctr-keep", "ifname": "net1"}]}
    node.runner("host-device", "GC", gc, netns_exec=node.ns.name, env=node.env).ok()
    assert link(node.ns, drop_dev) is not None and link(node.ns, "net1") is None
    assert link(keep_pod, "net1") is not None
    assert node.state_files() == ["hdnet~ctr-keep~net1.json"]
    assert node.ipam_calls()[-1]["cmd"] == "GC"


def test_host_local_lease_is_released_even_when_the_netns_is_gone(node: Node) -> None:
    dev = node.stand_in()
    data_dir = node.tmp / "host-local"
    ipam = {"type": "host-local", "ranges": [[{"subnet": "10.79.4.0/24"}]], "dataDir": str(data_dir)}
    cfg = {**conf(device=dev), "ipam": ipam}
    pod = node.pod()
    result = node.cni("ADD", cfg, pod).ok()
    leased = result["ips"][0]["address"]
    assert pod.addrs("net1") == {leased} and leased.startswith("10.79.4.")
    assert (data_dir / "hdnet" / leased.split("/")[0]).exists()
    delete_netns(pod)
    node.cni("DEL", cfg, None, netns=pod.path).ok()
    assert not (data_dir / "hdnet" / leased.split("/")[0]).exists(), "the lease leaked"


def test_orphan_of_an_undeleted_attachment_is_still_claimed(node: Node) -> None:
    """The orphan is back in the node (the kernel's part played by hand, see above), but its
    attachment has not been deleted: another pod selecting it by MAC is refused until DEL."""
    dev = node.stand_in()
    mac = present(node.ns, dev)["address"]
    first, second = node.pod(), node.pod()
    added(node, first, cid="ctr-first", device=dev)
    first.run("ip", "link", "set", "net1", "netns", node.ns.name)
    delete_netns(first)
    out = node.cni("ADD", conf(hwaddr=mac), second, container_id="ctr-second")
    assert out.code != 0 and "already in use by container ctr-first" in out.json["msg"]
    node.cni("DEL", conf(device=dev), None, container_id="ctr-first", netns=first.path).ok()
    added(node, second, cid="ctr-second", hwaddr=mac)
    assert present(second, "net1")["address"] == mac


def test_a_device_that_comes_back_after_its_del_is_restored_by_the_next_add(node: Node) -> None:
    """DEL ran while the device was nowhere (parked in the sink: the kernel had not returned it
    yet), so its record is kept as released; when it appears in the node as `net1`, the next ADD
    that wants it gives it its name back first."""
    dev = node.stand_in(mtu=1480)
    pod = node.pod()
    added(node, pod, device=dev)
    pod.run("ip", "link", "set", "net1", "netns", node.sink.name)
    delete_netns(pod)
    node.cni("DEL", conf(device=dev), None, netns=pod.path).ok()
    assert node.state_files() == ["hdnet~ctr-a~net1.json"]
    node.sink.run("ip", "link", "set", "net1", "netns", node.ns.name)
    assert link(node.ns, "net1") is not None and link(node.ns, dev) is None
    second = node.pod()
    added(node, second, cid="ctr-b", device=dev)
    assert present(second, "net1")["mtu"] == 1480
    assert node.state_files() == ["hdnet~ctr-b~net1.json"]


def test_a_device_back_under_its_own_name_after_its_del_is_restored_by_the_next_add(node: Node) -> None:
    """As above, but the device comes back under its original name (renamed by the node's naming
    rules as it reappears), down, with the pod's MTU: the next ADD gives it its recorded state
    back before taking it, so the pod after it leaves it as it first was."""
    dev = node.stand_in(mtu=1480)
    pod = node.pod()
    added(node, pod, device=dev)
    pod.run("ip", "link", "set", "net1", "mtu", "1400")
    pod.run("ip", "link", "set", "net1", "netns", node.sink.name)
    delete_netns(pod)
    node.cni("DEL", conf(device=dev), None, netns=pod.path).ok()
    assert node.state_files() == ["hdnet~ctr-a~net1.json"]
    node.sink.run("ip", "link", "set", "net1", "down")
    node.sink.run("ip", "link", "set", "net1", "name", dev)
    node.sink.run("ip", "link", "set", dev, "netns", node.ns.name)
    back = present(node.ns, dev)
    assert ("UP" not in back["flags"], back["mtu"]) == (True, 1400)
    second = node.pod()
    added(node, second, cid="ctr-b", device=dev)
    assert node.state_files() == ["hdnet~ctr-b~net1.json"], "the released record was not taken back"
    node.cni("DEL", conf(device=dev), second, container_id="ctr-b").ok()
    home = present(node.ns, dev)
    assert ("UP" in home["flags"], home["mtu"]) == (True, 1480), "not left as it first was"
    assert node.state_files() == []
