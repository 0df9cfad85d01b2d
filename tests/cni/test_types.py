"""Result models and version conversion (pycni.cni.types): spec examples, every version pair,
libcni's conversion rules, unknown keys, errors, and a lossless-projection property."""

from __future__ import annotations

import copy
import ipaddress
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycni.cni.errors import DecodingFailure, IncompatibleVersion
from pycni.cni.types import DNS, Interface, IPConfig, Result, Route, parse_result, render
from pycni.cni.types.codec import SHAPES
from pycni.cni.types.convert import CONVERTERS, convert, steps
from pycni.cni.version import CURRENT, SUPPORTED_VERSIONS

V02 = ("0.1.0", "0.2.0")
V04 = ("0.3.0", "0.3.1", "0.4.0")
V1 = ("1.0.0", "1.1.0")
ALL = SUPPORTED_VERSIONS


def roundtrip(result: Result, version: str) -> Result:
    return parse_result(render(result, version), version)


# --- the spec's own examples, typed in by hand ---------------------------------------------------

# SPEC.md (1.x) appendix "Add example": host-local's abbreviated result (no cniVersion), then bridge's.
HOST_LOCAL_RESULT: dict[str, Any] = {
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"nameservers": ["10.1.0.1"]},
}
BRIDGE_RESULT: dict[str, Any] = {
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"},
    ],
    "dns": {"nameservers": ["10.1.0.1"]},
}
# SPEC.md 0.4.0 "Network Configuration List Runtime Examples": the prevResult handed to tuning.
PREV_RESULT_040: dict[str, Any] = {
    "cniVersion": "0.4.0",
    "ips": [{"version": "4", "address": "10.0.0.5/32", "interface": 2}],
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"},
    ],
    "dns": {"nameservers": ["10.1.0.1"]},
}
# SPEC.md 0.2.0 "Result", with the placeholders filled in.
RESULT_020: dict[str, Any] = {
    "cniVersion": "0.2.0",
    "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
    "ip6": {"ip": "fd00:1::5/64", "gateway": "fd00:1::1", "routes": [{"dst": "::/0", "gw": "fd00:1::1"}]},
    "dns": {
        "nameservers": ["10.1.0.1"],
        "domain": "example.com",
        "search": ["example.com"],
        "options": ["ndots:2"],
    },
}
# SPEC.md 1.1.0 "Success": every field a 1.1.0 result can hold.
RESULT_110: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55", "mtu": 1500},
        {
            "name": "eth0",
            "mac": "99:88:77:66:55:44",
            "mtu": 9000,
            "sandbox": "/var/run/netns/blue",
            "socketPath": "/run/vhost/sock0",
            "pciID": "0000:04:00.5",
        },
    ],
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1}],
    "routes": [
        {
            "dst": "0.0.0.0/0",
            "gw": "10.1.0.1",
            "mtu": 1400,
            "advmss": 1360,
            "priority": 100,
            "table": 254,
            "scope": 0,
        }
    ],
    "dns": {"nameservers": ["10.1.0.1"]},
}


def test_spec_ipam_result_without_version_takes_config_version() -> None:
    result = parse_result(HOST_LOCAL_RESULT, "1.0.0")
    assert result.cni_version == CURRENT
    assert result.ips == [
        IPConfig(address=ipaddress.ip_interface("10.1.0.5/16"), gateway=ipaddress.ip_address("10.1.0.1"))
    ]
    assert result.interfaces == []
    assert render(result, "1.0.0") == {"cniVersion": "1.0.0", **HOST_LOCAL_RESULT}


def test_spec_ipam_result_without_version_read_as_020_when_config_says_so() -> None:
    legacy = {k: v for k, v in RESULT_020.items() if k != "cniVersion"}
    assert parse_result(legacy, "0.2.0") == parse_result(RESULT_020, "0.1.0")


def test_spec_bridge_result_renders_unchanged_at_1_0_0() -> None:
    result = parse_result(BRIDGE_RESULT, "1.0.0")
    assert [i.name for i in result.interfaces] == ["cni0", "veth3243", "eth0"]
    assert result.interfaces[2].sandbox == "/var/run/netns/blue"
    assert result.ips[0].interface == 2
    assert render(result, "1.0.0") == {"cniVersion": "1.0.0", **BRIDGE_RESULT}


def test_spec_040_prev_result_round_trips_exactly() -> None:
    result = parse_result(PREV_RESULT_040, "0.4.0")
    assert result.ips[0].interface == 2
    assert render(result, "0.4.0") == PREV_RESULT_040
    assert render(result, "1.0.0")["ips"] == [{"address": "10.0.0.5/32", "interface": 2}]


def test_spec_020_result_round_trips_exactly() -> None:
    result = parse_result(RESULT_020, "0.2.0")
    assert [str(ip.address) for ip in result.ips] == ["10.1.0.5/16", "fd00:1::5/64"]
    assert [str(r.dst) for r in result.routes] == ["0.0.0.0/0", "::/0"]
    assert render(result, "0.2.0") == RESULT_020


def test_spec_110_result_round_trips_exactly() -> None:
    result = parse_result(RESULT_110, "1.1.0")
    eth0 = result.interfaces[1]
    assert (eth0.mtu, eth0.socket_path, eth0.pci_id) == (9000, "/run/vhost/sock0", "0000:04:00.5")
    assert result.routes[0].table == 254 and result.routes[0].scope == 0
    assert render(result, "1.1.0") == RESULT_110


def test_libcni_downconversion_shapes() -> None:
    """The shapes libcni's own tests expect for a two-family 1.0.0 result at 0.1.0 and 0.4.0."""
    result = Result(
        interfaces=[Interface(name="eth0", mac="00:11:22:33:44:55", sandbox="/proc/42/ns/net")],
        ips=[
            IPConfig(
                address=ipaddress.ip_interface("192.0.2.30/24"),
                gateway=ipaddress.ip_address("192.0.2.1"),
                interface=0,
            ),
            IPConfig(
                address=ipaddress.ip_interface("2001:db8::30/64"),
                gateway=ipaddress.ip_address("2001:db8::1"),
                interface=0,
            ),
        ],
        routes=[
            Route(dst=ipaddress.ip_network("198.51.100.0/24"), gw=ipaddress.ip_address("192.0.2.8")),
            Route(dst=ipaddress.ip_network("2001:db8:1::/80"), gw=ipaddress.ip_address("2001:db8::8")),
        ],
        dns=DNS(
            nameservers=["192.0.2.53"], domain="example.org", search=["example.org"], options=["ndots:1"]
        ),
    )
    dns = {
        "nameservers": ["192.0.2.53"],
        "domain": "example.org",
        "search": ["example.org"],
        "options": ["ndots:1"],
    }
    assert render(result, "0.1.0") == {
        "cniVersion": "0.1.0",
        "ip4": {
            "ip": "192.0.2.30/24",
            "gateway": "192.0.2.1",
            "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.8"}],
        },
        "ip6": {
            "ip": "2001:db8::30/64",
            "gateway": "2001:db8::1",
            "routes": [{"dst": "2001:db8:1::/80", "gw": "2001:db8::8"}],
        },
        "dns": dns,
    }
    assert render(result, "0.4.0") == {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "00:11:22:33:44:55", "sandbox": "/proc/42/ns/net"}],
        "ips": [
            {"version": "4", "address": "192.0.2.30/24", "gateway": "192.0.2.1", "interface": 0},
            {"version": "6", "address": "2001:db8::30/64", "gateway": "2001:db8::1", "interface": 0},
        ],
        "routes": [
            {"dst": "198.51.100.0/24", "gw": "192.0.2.8"},
            {"dst": "2001:db8:1::/80", "gw": "2001:db8::8"},
        ],
        "dns": dns,
    }


# --- every pair of versions ----------------------------------------------------------------------

EXTRA = {"x-vendor": {"k": [1, None]}}
RICH_020 = {
    **RESULT_020,
    **EXTRA,
    "ip4": {
        **RESULT_020["ip4"],
        "x-ip": 1,
        "routes": [{"dst": "10.9.0.0/16", "gw": "10.1.0.254", "x-rt": True}],
    },
}
RICH_040 = {
    **PREV_RESULT_040,
    **EXTRA,
    "ips": [
        {"version": "4", "address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 2, "x-ip": "a"},
        {"version": "4", "address": "10.0.0.6/24", "interface": 2},
        {"version": "6", "address": "fd00::5/64", "interface": 2},
    ],
    "interfaces": [*PREV_RESULT_040["interfaces"][:2], {**PREV_RESULT_040["interfaces"][2], "x-if": None}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "priority": 5, "x-rt": []}, {"dst": "fd01::/48"}],
}
RICH_110 = {
    **RESULT_110,
    **EXTRA,
    "interfaces": [{**RESULT_110["interfaces"][0], "x-if": 0}, RESULT_110["interfaces"][1]],
}


def richest(a: str, b: str) -> tuple[dict[str, Any], str]:
    """The richest example both versions can carry in full, and its own version."""
    low = min(a, b, key=ALL.index)
    if low in V02:
        return RICH_020, "0.2.0"
    if low in V04:
        return RICH_040, "0.4.0"
    return RICH_110, "1.1.0"


@pytest.mark.parametrize("b", ALL)
@pytest.mark.parametrize("a", ALL)
def test_round_trip_between_every_pair(a: str, b: str) -> None:
    raw, own = richest(a, b)
    original = parse_result(raw, own)
    at_a = render(original, a)
    via_b = parse_result(render(parse_result(at_a, a), b), b)
    assert via_b == original
    assert render(via_b, a) == at_a
    assert render(via_b, own) == raw


# --- libcni's conversion rules -------------------------------------------------------------------


def addr(text: str) -> IPConfig:
    return IPConfig(address=ipaddress.ip_interface(text))


@pytest.mark.parametrize("version", V02)
def test_020_keeps_only_the_first_address_of_each_family(version: str) -> None:
    result = Result(
        ips=[addr("fd00::1/64"), addr("10.0.0.1/24"), addr("10.0.0.2/24"), addr("fd00::2/64")],
        routes=[Route(dst=ipaddress.ip_network("10.8.0.0/16")), Route(dst=ipaddress.ip_network("fd08::/32"))],
    )
    out = render(result, version)
    assert out["ip4"] == {"ip": "10.0.0.1/24", "routes": [{"dst": "10.8.0.0/16"}]}
    assert out["ip6"] == {"ip": "fd00::1/64", "routes": [{"dst": "fd08::/32"}]}
    assert [str(ip.address) for ip in roundtrip(result, version).ips] == ["10.0.0.1/24", "fd00::1/64"]


def test_020_routes_go_under_the_family_of_their_dst_and_lose_their_family_without_an_address() -> None:
    result = Result(
        ips=[addr("10.0.0.1/24")],
        routes=[
            Route(dst=ipaddress.ip_network("::/0"), gw=ipaddress.ip_address("fd00::1")),
            Route(
                dst=ipaddress.ip_network("0.0.0.0/0"),
                gw=ipaddress.ip_address("10.0.0.254"),
                mtu=1400,
                table=7,
            ),
        ],
    )
    out = render(result, "0.2.0")
    assert "ip6" not in out
    assert out["ip4"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.0.0.254"}]


def test_020_upgrade_puts_ip4_before_ip6_and_routes_at_top_level() -> None:
    raw = {"cniVersion": "0.2.0", "ip6": RESULT_020["ip6"], "ip4": RESULT_020["ip4"]}
    out = render(parse_result(raw, "0.2.0"), "0.4.0")
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    assert out["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:1::1"}]
    assert "interfaces" not in out and all("interface" not in ip for ip in out["ips"])


@pytest.mark.parametrize("version", V04 + V1)
def test_interface_indexes_are_preserved(version: str) -> None:
    result = Result(
        interfaces=[Interface(name="br0"), Interface(name="eth0", sandbox="/run/netns/x")],
        ips=[
            IPConfig(address=ipaddress.ip_interface("10.0.0.1/24"), interface=0),
            IPConfig(address=ipaddress.ip_interface("10.0.0.2/24"), interface=1),
            IPConfig(
                address=ipaddress.ip_interface("10.0.0.3/24"), interface=-1
            ),  # spec-upgrades: seen in the wild
            addr("10.0.0.4/24"),
        ],
    )
    out = render(result, version)
    assert [ip.get("interface") for ip in out["ips"]] == [0, 1, -1, None]
    assert [ip.interface for ip in roundtrip(result, version).ips] == [0, 1, -1, None]


@pytest.mark.parametrize("version", V04)
def test_03x_and_040_ips_carry_version_derived_from_the_address(version: str) -> None:
    out = render(Result(ips=[addr("fd00::1/64"), addr("10.0.0.1/8")]), version)
    assert out["cniVersion"] == version
    assert [ip["version"] for ip in out["ips"]] == ["6", "4"]
    assert "ip" not in out  # 0.3.0 is written with "ips", as libcni does


def test_input_version_field_is_neither_trusted_nor_kept() -> None:
    raw = {"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.1/8"}]}
    result = parse_result(raw, "0.4.0")
    assert result.ips[0].model_extra == {}
    assert render(result, "0.4.0")["ips"] == [{"version": "4", "address": "10.0.0.1/8"}]
    assert render(result, "0.2.0")["ip4"] == {"ip": "10.0.0.1/8"}


@pytest.mark.parametrize("version", ALL)
def test_no_version_field_at_1_x_and_0_2(version: str) -> None:
    out = render(Result(ips=[addr("10.0.0.1/8")]), version)
    entry = out["ip4"] if version in V02 else out["ips"][0]
    assert ("version" in entry) == (version in V04)


def test_11_fields_dropped_downward() -> None:
    result = parse_result(RESULT_110, "1.1.0")
    at_040 = render(result, "0.4.0")
    assert at_040["interfaces"][1] == {
        "name": "eth0",
        "mac": "99:88:77:66:55:44",
        "sandbox": "/var/run/netns/blue",
    }
    assert at_040["interfaces"][0] == {"name": "cni0", "mac": "00:11:22:33:44:55"}
    # libcni shares one route type from 0.3.0 on: route attributes survive 0.4.0, not 0.2.0.
    assert at_040["routes"] == RESULT_110["routes"]
    assert render(result, "0.2.0")["ip4"]["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]
    # libcni also uses one struct for 1.0.0 and 1.1.0: nothing is dropped there.
    assert render(result, "1.0.0") == {**RESULT_110, "cniVersion": "1.0.0"}


def test_11_interface_fields_in_040_input_are_not_promoted() -> None:
    raw = {**PREV_RESULT_040, "interfaces": [{"name": "eth0", "mtu": "junk", "pciID": 7, "x-keep": 1}]}
    result = parse_result(raw, "0.4.0")
    assert result.interfaces == [Interface(name="eth0", **{"x-keep": 1})]


# --- unknown keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL)
def test_unknown_keys_survive_where_the_target_has_their_object(version: str) -> None:
    raw = {
        "cniVersion": "1.1.0",
        "x-top": {"nested": [1, 2]},
        "x-null": None,
        "interfaces": [{"name": "eth0", "x-if": "i"}],
        "ips": [{"address": "10.0.0.1/24", "interface": 0, "x-ip": "p"}],
        "routes": [{"dst": "10.8.0.0/16", "x-rt": "r"}],
        "dns": {"nameservers": ["10.0.0.53"], "x-dns": "d"},
    }
    out = render(parse_result(raw, "1.1.0"), version)
    assert out["x-top"] == {"nested": [1, 2]} and "x-null" in out and out["x-null"] is None
    assert out["dns"]["x-dns"] == "d"
    if version in V02:
        assert out["ip4"]["x-ip"] == "p" and out["ip4"]["routes"][0]["x-rt"] == "r"
    else:
        assert out["interfaces"][0]["x-if"] == "i"
        assert out["ips"][0]["x-ip"] == "p" and out["routes"][0]["x-rt"] == "r"
    assert render(parse_result(out, version), version) == out


def test_unknown_key_named_like_a_target_field_is_dropped_not_promoted() -> None:
    raw = {"cniVersion": "1.0.0", "ip4": {"ip": "bogus"}, "ips": [{"address": "10.0.0.1/24", "routes": "x"}]}
    out = render(parse_result(raw, "1.0.0"), "0.2.0")
    assert out["ip4"] == {"ip": "10.0.0.1/24"}
    assert render(parse_result(raw, "1.0.0"), "1.0.0") == raw


def test_python_field_names_in_json_stay_unknown_keys() -> None:
    raw = {"cniVersion": "1.1.0", "interfaces": [{"name": "e", "socket_path": "/x"}]}
    (iface,) = parse_result(raw, "1.1.0").interfaces
    assert iface.socket_path is None and iface.model_extra == {"socket_path": "/x"}


def test_models_accept_python_names_and_aliases() -> None:
    assert Interface(name="e", socket_path="/s", pci_id="p") == Interface(
        name="e", socketPath="/s", pciID="p"
    )
    assert Result(cniVersion="1.0.0").cni_version == "1.0.0"
    assert Result().cni_version == "1.1.0"


# --- DNS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL)
def test_dns_written_always_below_1_0_and_only_when_set_from_1_0(version: str) -> None:
    for dns in (None, DNS()):
        out = render(Result(ips=[addr("10.0.0.1/8")], dns=dns), version)
        assert ("dns" in out) == (version in V02 + V04)
        if version in V02 + V04:
            assert out["dns"] == {}
    assert render(Result(ips=[addr("10.0.0.1/8")], dns=DNS(domain="d")), version)["dns"] == {"domain": "d"}


def test_empty_dns_parses_as_none() -> None:
    assert parse_result({"cniVersion": "0.4.0", "dns": {}}, "0.4.0").dns is None


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", V02)
def test_no_ip_cannot_be_rendered_as_01_or_02(version: str) -> None:
    l2_only = Result(interfaces=[Interface(name="eth0", mac="02:00:00:00:00:01")])
    with pytest.raises(IncompatibleVersion) as err:
        render(l2_only, version)
    assert err.value.code == 1
    assert "no valid IP addresses" in err.value.msg and "0.3.0 or later" in err.value.msg


MALFORMED: list[tuple[Any, str]] = [
    (None, "1.0.0"),
    ([], "1.0.0"),
    ({"cniVersion": 1}, "1.0.0"),
    ({"cniVersion": "one"}, "1.0.0"),
    ({}, "1.0"),
    ({"cniVersion": "1.0.0", "ips": {"address": "10.0.0.1/8"}}, "1.0.0"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}, "1.0.0"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.300/8"}]}, "1.0.0"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "gateway": "10.0.0.1/8"}]}, "1.0.0"),
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8", "interface": "0"}]}, "1.0.0"),
    ({"cniVersion": "1.1.0", "interfaces": [{"mac": "02:00:00:00:00:01"}]}, "1.0.0"),
    ({"cniVersion": "1.1.0", "interfaces": [{"name": "e", "mtu": "1500"}]}, "1.0.0"),
    ({"cniVersion": "1.1.0", "routes": [{"gw": "10.0.0.1"}]}, "1.0.0"),
    ({"cniVersion": "1.1.0", "dns": {"nameservers": "10.0.0.53"}}, "1.0.0"),
    ({"cniVersion": "0.4.0", "interfaces": [{"name": 3}]}, "0.4.0"),
    ({"cniVersion": "0.2.0", "ip4": {"ip": "fd00::1/64"}}, "0.2.0"),
    ({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}, "0.2.0"),
    ({"cniVersion": "0.1.0", "ip6": {"ip": "fd00::1/64", "routes": [{"dst": "nope"}]}}, "0.1.0"),
]


@pytest.mark.parametrize(("raw", "default"), MALFORMED)
def test_malformed_input_is_a_decoding_failure(raw: Any, default: str) -> None:
    with pytest.raises(DecodingFailure) as err:
        parse_result(raw, default)
    assert err.value.code == 6 and err.value.msg


def test_decoding_failure_names_the_offending_key() -> None:
    with pytest.raises(DecodingFailure) as err:
        parse_result(
            {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1/8"}, {"address": "10.0.0.2"}]}, "1.0.0"
        )
    assert err.value.msg.startswith(
        "failed to decode CNI 1.0.0 result: ips.1.address: expected an address in CIDR"
    )


@pytest.mark.parametrize("version", ["0.5.0", "2.0.0"])
def test_unsupported_versions_are_incompatible(version: str) -> None:
    with pytest.raises(IncompatibleVersion):
        parse_result({"cniVersion": version}, "1.0.0")
    with pytest.raises(IncompatibleVersion):
        render(Result(), version)


@pytest.mark.parametrize("claimed", [None, ""])
def test_missing_or_empty_version_takes_the_default(claimed: str | None) -> None:
    raw = {"cniVersion": claimed, "ip4": {"ip": "10.0.0.1/8"}}
    assert [str(ip.address) for ip in parse_result(raw, "0.2.0").ips] == ["10.0.0.1/8"]


# --- small behaviours ----------------------------------------------------------------------------


def test_route_dst_host_bits_are_masked_and_address_host_bits_kept() -> None:
    result = parse_result(
        {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24"}], "routes": [{"dst": "10.9.9.9/16"}]},
        "1.0.0",
    )
    assert render(result, "1.0.0")["routes"] == [{"dst": "10.9.0.0/16"}]
    assert render(result, "1.0.0")["ips"] == [{"address": "10.1.2.3/24"}]


def test_parse_and_render_leave_their_inputs_alone() -> None:
    raw = copy.deepcopy(RICH_040)
    result = parse_result(raw, "0.4.0")
    assert raw == RICH_040
    result.cni_version = "1.0.0"
    before = result.model_copy(deep=True)
    assert render(result, "0.2.0")["cniVersion"] == "0.2.0"
    assert render(result, "1.1.0")["cniVersion"] == "1.1.0"
    assert result == before


def test_gateway_refuses_an_address_with_prefix() -> None:
    with pytest.raises(ValueError, match="expected an IP address"):
        IPConfig(address=ipaddress.ip_interface("10.0.0.1/8"), gateway=ipaddress.ip_interface("10.0.0.1/8"))


# --- the converter table -------------------------------------------------------------------------


def test_table_is_exactly_the_neighbour_steps_both_ways() -> None:
    neighbours = set(itertools.pairwise(ALL))
    assert set(CONVERTERS) == neighbours | {(b, a) for a, b in neighbours}
    assert steps("1.1.0", "0.2.0") == [
        ("1.1.0", "1.0.0"),
        ("1.0.0", "0.4.0"),
        ("0.4.0", "0.3.1"),
        ("0.3.1", "0.3.0"),
        ("0.3.0", "0.2.0"),
    ]
    assert steps("0.4.0", "0.4.0") == []


@pytest.mark.parametrize(("src", "dst"), sorted(CONVERTERS))
def test_every_table_entry(src: str, dst: str) -> None:
    """Each step yields dst's shape and version; every upward step is undone by its downward one."""
    raw, own = richest(src, dst)
    at_src = convert(parse_result(raw, own), CURRENT, src)
    stepped = CONVERTERS[(src, dst)](at_src, dst)
    assert type(stepped) is SHAPES[dst]
    assert stepped.cni_version == dst
    back = CONVERTERS[(dst, src)](stepped, src)
    assert back.model_dump(mode="json", by_alias=True) == at_src.model_dump(mode="json", by_alias=True)


# --- property: newest -> X -> newest keeps exactly what X can carry ------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
extras = st.dictionaries(st.text(max_size=6).map(lambda s: "x-" + s), json_values, max_size=2)
small_int = st.none() | st.integers(0, 2**31 - 1)
short_text = st.text(min_size=1, max_size=12)


@st.composite
def interface_addrs(draw: st.DrawFn) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    ip = draw(st.ip_addresses())
    return ipaddress.ip_interface(f"{ip}/{draw(st.integers(0, ip.max_prefixlen))}")


@st.composite
def networks(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    ip = draw(st.ip_addresses())
    return ipaddress.ip_network(f"{ip}/{draw(st.integers(0, ip.max_prefixlen))}", strict=False)


def with_extras(model: type[Any], fields: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return st.builds(lambda f, x: model(**f, **x), fields, extras)


interfaces = with_extras(
    Interface,
    st.fixed_dictionaries(
        {"name": short_text},
        optional={
            "mac": short_text,
            "mtu": small_int,
            "sandbox": short_text,
            "socket_path": short_text,
            "pci_id": short_text,
        },
    ),
)
ip_configs = with_extras(
    IPConfig,
    st.fixed_dictionaries(
        {"address": interface_addrs()},
        optional={"gateway": st.ip_addresses(), "interface": st.integers(-1, 5)},
    ),
)
routes = with_extras(
    Route,
    st.fixed_dictionaries(
        {"dst": networks()},
        optional={k: small_int for k in ("mtu", "advmss", "priority", "table", "scope")}
        | {"gw": st.ip_addresses()},
    ),
)
dnses = st.none() | with_extras(
    DNS,
    st.fixed_dictionaries(
        {},
        optional={
            "nameservers": st.lists(short_text, max_size=2),
            "domain": short_text,
            "search": st.lists(short_text, max_size=2),
        },
    ),
)
results = with_extras(
    Result,
    st.fixed_dictionaries(
        {
            "interfaces": st.lists(interfaces, max_size=3),
            "ips": st.lists(ip_configs, max_size=4),
            "routes": st.lists(routes, max_size=4),
            "dns": dnses,
        }
    ),
)


def carried(result: Result, version: str) -> Result:
    """What `version` can carry of `result`, written independently of the converters."""
    out = result.model_copy(deep=True, update={"cni_version": CURRENT})
    if out.dns is not None and out.dns.is_empty():
        out.dns = None
    if version in V04:
        for iface in out.interfaces:
            iface.mtu = iface.socket_path = iface.pci_id = None
    if version in V02:
        first: dict[int, IPConfig | None] = {4: None, 6: None}
        for ip in out.ips:
            first[ip.address.version] = first[ip.address.version] or ip
        kept = [ip for ip in (first[4], first[6]) if ip is not None]
        out.interfaces = []
        out.ips = [IPConfig(address=ip.address, gateway=ip.gateway, **(ip.model_extra or {})) for ip in kept]
        families = [ip.address.version for ip in kept]
        out.routes = [
            Route(dst=r.dst, gw=r.gw, **(r.model_extra or {}))
            for fam in families
            for r in out.routes
            if r.dst.version == fam
        ]
    return out


@settings(max_examples=150, deadline=None)
@given(result=results, version=st.sampled_from(ALL))
def test_newest_to_any_version_and_back_keeps_what_that_version_carries(result: Result, version: str) -> None:
    if version in V02 and not result.ips:
        with pytest.raises(IncompatibleVersion):
            render(result, version)
        return
    assert roundtrip(result, version) == carried(result, version)
