"""The installed `host-local` executable, verb by verb, over every spec version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import ALL_SPEC_VERSIONS, has_check, has_gc, has_interfaces
from tests.ipam.conftest import Net


def addresses(result: dict[str, Any], cni_version: str) -> list[str]:
    if has_interfaces(cni_version):
        return [ip["address"] for ip in result["ips"]]
    return [result[k]["ip"] for k in ("ip4", "ip6") if k in result]


@pytest.mark.parametrize("cni_version", ALL_SPEC_VERSIONS)
def test_add_check_del_lifecycle(net: Net, cni_version: str) -> None:
    conf = net.conf(
        cni_version,
        ranges=[[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd00:99::/120"}]],
        routes=[{"dst": "0.0.0.0/0"}],
    )
    result = net.run("ADD", conf).ok()
    assert result["cniVersion"] == cni_version
    assert addresses(result, cni_version) == ["10.99.0.2/24", "fd00:99::2/120"]
    assert net.reservations() == {"10.99.0.2": b"ctr-0\r\neth0", "fd00:99::2": b"ctr-0\r\neth0"}
    if has_check(cni_version):
        net.run("CHECK", {**conf, "prevResult": result}).ok()
    if has_gc(cni_version):
        net.cni("host-local", "STATUS", conf, container_id=None, ifname=None).ok()
        net.cni(
            "host-local",
            "GC",
            {**conf, "cni.dev/valid-attachments": [{"containerID": "ctr-0", "ifname": "eth0"}]},
            container_id=None,
            ifname=None,
        ).ok()
        assert len(net.reservations()) == 2
    assert net.run("DEL", conf).ok() is None
    assert net.run("DEL", conf).ok() is None
    assert net.reservations() == {}
    if has_check(cni_version):
        assert net.run("CHECK", conf).code != 0


def test_retried_add_returns_the_same_addresses_and_one_del_releases(net: Net) -> None:
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd00:99::/120"}]])
    first = net.run("ADD", conf).ok()
    assert net.run("ADD", conf).ok() == first
    other_if = net.run("ADD", conf, ifname="net1").ok()
    assert other_if["ips"] != first["ips"]
    assert len(net.reservations()) == 4
    net.run("DEL", conf).ok()
    assert set(net.reservations().values()) == {b"ctr-0\r\nnet1"}


def test_del_of_a_network_never_used_creates_nothing(net: Net) -> None:
    net.run("DEL", net.conf()).ok()
    assert not net.data_dir.exists()


def test_del_releases_legacy_id_only_files(net: Net) -> None:
    net.dir.mkdir(parents=True)
    (net.dir / "10.99.0.9").write_bytes(b"ctr-0")
    (net.dir / "10.99.0.10").write_bytes(b"ctr-1")
    net.run("DEL", net.conf()).ok()
    assert net.reservations() == {"10.99.0.10": b"ctr-1"}


def test_exhaustion_has_the_reference_message(net: Net) -> None:
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/29"}]])
    got = [net.run("ADD", conf, container_id=f"c{i}").ok()["ips"][0]["address"] for i in range(5)]
    assert got == [f"10.99.0.{i}/29" for i in range(2, 7)]
    out = net.run("ADD", conf, container_id="c5")
    assert out.error_code == 100
    assert out.json["msg"] == (
        "failed to allocate for range 0: no IP addresses available in range set: 10.99.0.1-10.99.0.6"
    )


def test_requested_ips_from_every_source(net: Net) -> None:
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd00:99::/120"}]])
    a = net.run("ADD", conf, container_id="a", cni_args="IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.99.0.50").ok()
    b = net.run("ADD", {**conf, "args": {"cni": {"ips": ["fd00:99::77"]}}}, container_id="b").ok()
    c = net.run(
        "ADD", {**conf, "runtimeConfig": {"ips": ["10.99.0.60/24", "fd00:99::60/120"]}}, container_id="c"
    ).ok()
    assert [i["address"] for i in a["ips"]] == ["10.99.0.50/24", "fd00:99::2/120"]
    assert [i["address"] for i in b["ips"]] == ["10.99.0.51/24", "fd00:99::77/120"]
    assert [i["address"] for i in c["ips"]] == ["10.99.0.60/24", "fd00:99::60/120"]
    taken = net.run("ADD", conf, container_id="d", cni_args="IP=10.99.0.50")
    assert taken.error_code == 100 and "10.99.0.50 is not available" in taken.json["msg"]
    assert net.run("ADD", conf, container_id="e", cni_args="FOO=1").error_code == 4
    outside = net.run("ADD", conf, container_id="f", cni_args="IP=192.168.1.1")
    assert outside.json["msg"] == "failed to allocate all requested IPs: 192.168.1.1"
    assert {v for v in net.reservations().values()} == {b"a\r\neth0", b"b\r\neth0", b"c\r\neth0"}


def test_legacy_top_level_range_and_ip_ranges_capability(net: Net) -> None:
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/24"}]], subnet="10.98.0.0/24", gateway="10.98.0.254")
    conf["runtimeConfig"] = {"ipRanges": [[{"subnet": "10.97.0.0/24", "rangeStart": "10.97.0.100"}]]}
    result = net.run("ADD", conf).ok()
    assert [(i["address"], i["gateway"]) for i in result["ips"]] == [
        ("10.97.0.100/24", "10.97.0.1"),
        ("10.98.0.1/24", "10.98.0.254"),
        ("10.99.0.2/24", "10.99.0.1"),
    ]


def test_resolv_conf_and_routes(net: Net, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# comment\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain example.org\n"
        "search a.example b.example\noptions ndots:2 edns0\nsortlist 1.2.3.4\n"
    )
    conf = net.conf(
        resolvConf=str(resolv), routes=[{"dst": "0.0.0.0/0"}, {"dst": "10.1.0.0/16", "gw": "10.99.0.9"}]
    )
    result = net.run("ADD", conf).ok()
    assert result["dns"] == {
        "nameservers": ["10.0.0.53", "fd00::53"],
        "domain": "example.org",
        "search": ["a.example", "b.example"],
        "options": ["ndots:2", "edns0"],
    }
    assert result["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "10.1.0.0/16", "gw": "10.99.0.9"}]


def test_invalid_config_is_code_7(net: Net) -> None:
    out = net.run("ADD", net.conf(ranges=[[{"subnet": "10.99.0.1/24"}]]))
    assert out.error_code == 7 and out.json["msg"].startswith("invalid range set 0:")
    assert not net.data_dir.exists()


def test_check_verifies_the_addresses_of_prev_result(net: Net) -> None:
    conf = net.conf()
    result = net.run("ADD", conf).ok()
    net.run("CHECK", {**conf, "prevResult": result}).ok()
    forged = {**result, "ips": [{"address": "10.99.0.77/24", "gateway": "10.99.0.1"}]}
    out = net.run("CHECK", {**conf, "prevResult": forged})
    assert out.code != 0 and "10.99.0.77" in out.json["msg"]
    assert net.run("CHECK", conf, container_id="nobody").code != 0
