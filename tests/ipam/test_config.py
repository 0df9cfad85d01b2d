"""The host-local config model: where range sets come from, what is rejected, requested IPs."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from pycni.cni.errors import InvalidConfig, InvalidEnvironment
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.ipam.host_local.config import HostLocalConf, requested_ips


def load(ipam: dict[str, Any], cni_version: str = "1.0.0", **top: Any) -> HostLocalConf:
    return HostLocalConf.load(
        {"cniVersion": cni_version, "name": "net", "ipam": {"type": "host-local", **ipam}, **top}
    )


def sets(conf: HostLocalConf) -> list[str]:
    return [str(rs) for rs in conf.range_sets]


def test_runtime_ip_ranges_then_legacy_then_ranges() -> None:
    conf = load(
        {"subnet": "10.5.0.0/24", "rangeStart": "10.5.0.10", "ranges": [[{"subnet": "10.6.0.0/24"}]]},
        runtimeConfig={"ipRanges": [[{"subnet": "10.7.0.0/30"}]]},
    )
    assert sets(conf) == ["10.7.0.1-10.7.0.2", "10.5.0.10-10.5.0.254", "10.6.0.1-10.6.0.254"]


def test_defaults() -> None:
    conf = load({"ranges": [[{"subnet": "10.0.0.0/24"}]]})
    assert conf.ipam.data_dir == "/var/lib/cni/networks"
    assert conf.ipam.release_on_reboot is False
    assert conf.ipam.routes == []


@pytest.mark.parametrize(
    ("ipam", "message"),
    [
        ({"ranges": [[{"subnet": "10.0.0.5/24"}]]}, "invalid range set 0: .*host bits"),
        ({"ranges": [[{"subnet": "10.0.0.0/31"}]]}, "invalid range set 0: Network 10.0.0.0/31 too small"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}, "mixed address families"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]}, "subnets .* overlap"),
        (
            {"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]},
            "range set 0 overlaps with 1",
        ),
        ({"ranges": [[]]}, "invalid range set 0: empty range set"),
        ({"ranges": []}, "no IP ranges specified"),
        ({"ranges": [[{"subnet": "not-a-cidr"}]]}, "invalid range set 0"),
        ({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "10.0.1.1"}]]}, "gateway 10.0.1.1 not in network"),
    ],
)
def test_invalid_ranges_are_invalid_config(ipam: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message) as info:
        load(ipam)
    assert info.value.code == 7


def test_missing_ipam_is_invalid_config() -> None:
    with pytest.raises(InvalidConfig, match="ipam"):
        HostLocalConf.load({"cniVersion": "1.0.0", "name": "net"})


def test_two_sets_per_family_need_spec_0_3_0() -> None:
    two = {"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]}
    with pytest.raises(InvalidConfig, match="does not support more than 1 address per family"):
        load(two, "0.2.0")
    assert len(load(two, "0.3.1").range_sets) == 2
    assert len(load(two, "0.2.0", cniVersions=["1.0.0"]).range_sets) == 2
    assert (
        len(load({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}, "0.2.0").range_sets)
        == 2
    )


def rt(cni_args: str = "") -> RuntimeArgs:
    return RuntimeArgs.from_env(
        Command.ADD,
        {
            "CNI_CONTAINERID": "c",
            "CNI_NETNS": "/x",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/b",
            "CNI_ARGS": cni_args,
        },
    )


def test_requested_ips_in_reference_order_without_duplicates() -> None:
    conf = load(
        {"ranges": [[{"subnet": "10.0.0.0/24"}]]},
        args={"cni": {"ips": ["10.0.0.7", "10.0.0.5/24"]}},
        runtimeConfig={"ips": ["10.0.0.9/24", "fd00::3"]},
    )
    got = requested_ips(conf, rt("IP=10.0.0.5,10.0.0.6/24"))
    assert got == [ip_address(a) for a in ("10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.9", "fd00::3")]


def test_unknown_cni_args_are_rejected_unless_ignored() -> None:
    conf = load({"ranges": [[{"subnet": "10.0.0.0/24"}]]})
    with pytest.raises(InvalidEnvironment, match="unknown args"):
        requested_ips(conf, rt("K8S_POD_NAME=x"))
    assert requested_ips(conf, rt("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.4")) == [ip_address("10.0.0.4")]


def test_garbage_requested_ip_is_invalid_config() -> None:
    conf = load({"ranges": [[{"subnet": "10.0.0.0/24"}]]}, args={"cni": {"ips": ["ten"]}})
    with pytest.raises(InvalidConfig, match="cannot understand ip"):
        requested_ips(conf, rt())
