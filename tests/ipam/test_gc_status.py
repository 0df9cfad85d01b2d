"""GC (release what no valid attachment holds), STATUS (can ADD succeed?), the reboot guard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.cni import Outcome
from tests.ipam.conftest import Net


def gc(
    net: Net,
    conf: dict[str, Any],
    valid: list[tuple[str, str]] | None,
    key: str = "cni.dev/valid-attachments",
) -> Outcome:
    body = dict(conf, cniVersion="1.1.0")
    if valid is not None:
        body[key] = [{"containerID": c, "ifname": i} for c, i in valid]
    return net.cni("host-local", "GC", body, container_id=None, ifname=None)


def status(net: Net, conf: dict[str, Any]) -> Outcome:
    return net.cni("host-local", "STATUS", dict(conf, cniVersion="1.1.0"), container_id=None, ifname=None)


def populate(net: Net, conf: dict[str, Any]) -> None:
    for cid, ifname in (("keep", "eth0"), ("keep", "net1"), ("gone", "eth0")):
        net.run("ADD", conf, container_id=cid, ifname=ifname).ok()
    (net.dir / "10.99.0.200").write_bytes(b"legacy-keep")  # id-only, pre-ifname format
    (net.dir / "10.99.0.201").write_bytes(b"legacy-gone")
    (net.dir / "10.99.0.202").write_bytes(b"")  # a crashed writer of the reference binary
    (net.dir / "stray.txt").write_bytes(b"not ours")


def test_gc_releases_exactly_what_no_valid_attachment_holds(net: Net) -> None:
    conf = net.conf("1.1.0")
    populate(net, conf)
    gc(net, conf, [("keep", "eth0"), ("legacy-keep", "eth7")]).ok()
    assert net.reservations() == {
        "10.99.0.2": b"keep\r\neth0",
        "10.99.0.200": b"legacy-keep",
        "stray.txt": b"not ours",
    }
    assert (net.dir / "lock").exists() and (net.dir / "last_reserved_ip.0").exists()
    again = net.run("ADD", conf, container_id="keep", ifname="net1").ok()  # the index saw the GC
    assert again["ips"][0]["address"] == "10.99.0.5/24"


def test_gc_with_the_old_key_and_with_an_empty_list(net: Net) -> None:
    conf = net.conf("1.1.0")
    populate(net, conf)
    gc(net, conf, [("keep", "eth0")], key="cni.dev/attachments").ok()
    assert "10.99.0.2" in net.reservations()
    gc(net, conf, []).ok()
    assert net.reservations() == {"stray.txt": b"not ours"}


def test_gc_without_a_valid_list_releases_nothing(net: Net) -> None:
    conf = net.conf("1.1.0")
    net.run("ADD", conf).ok()
    out = gc(net, conf, None)
    assert out.error_code == 7
    assert len(net.reservations()) == 1


def test_gc_needs_spec_1_1_0(net: Net) -> None:
    conf = net.conf("1.0.0")
    out = net.cni(
        "host-local", "GC", {**conf, "cni.dev/valid-attachments": []}, container_id=None, ifname=None
    )
    assert out.error_code == 1


def test_status_ready_then_exhausted_then_ready(net: Net) -> None:
    conf = net.conf("1.1.0", ranges=[[{"subnet": "10.99.0.0/24"}], [{"subnet": "10.98.0.0/30"}]])
    status(net, conf).ok()
    net.run("ADD", conf, container_id="a").ok()  # takes 10.98.0.2, the only one (.1 is the gateway)
    out = status(net, conf)
    assert out.error_code == 50
    assert out.json["msg"] == "no IP addresses available in range set 1: 10.98.0.1-10.98.0.2"
    net.run("DEL", conf, container_id="a").ok()
    status(net, conf).ok()


def test_status_unusable_data_dir_is_code_50(net: Net, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    conf = net.conf("1.1.0", dataDir=str(blocker / "sub"))
    out = status(net, conf)
    assert out.error_code == 50 and "not usable" in out.json["msg"]


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_reboot_guard_releases_reservations_of_a_previous_boot(net: Net) -> None:
    conf = net.conf("1.1.0", ranges=[[{"subnet": "10.99.0.0/30"}]], releaseOnReboot=True)
    net.run("ADD", conf, container_id="a").ok()  # takes 10.99.0.2, the only one
    recorded = net.data_dir / ".pycni" / net.name / "boot_id"
    assert recorded.read_text() == boot_id()
    assert status(net, conf).error_code == 50
    recorded.write_text("an-earlier-boot")  # as if the node had rebooted since
    status(net, conf).ok()  # the next ADD will start from an empty store
    result = net.run("ADD", conf, container_id="after-reboot").ok()
    assert result["ips"][0]["address"] == "10.99.0.2/30"
    assert list(net.reservations().values()) == [b"after-reboot\r\neth0"]
    assert recorded.read_text() == boot_id()


def test_without_the_guard_a_previous_boot_is_not_detected(net: Net) -> None:
    conf = net.conf("1.1.0", ranges=[[{"subnet": "10.99.0.0/30"}]])
    net.run("ADD", conf, container_id="a").ok()
    assert not (net.data_dir / ".pycni" / net.name / "boot_id").exists()
    assert net.run("ADD", conf, container_id="b").error_code == 100
