"""Config validation: bad keys are code 7 naming the key, defaults are as documented."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from pycni.cni.errors import InvalidConfig
from pycni.net import links
from pycni.plugins.vxlan.config import VxlanConf
from pycni.plugins.vxlan.device import Underlay, spec_for
from tests.helpers.cni import Runner

BASE: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "name": "ovl",
    "type": "vxlan",
    "vni": 7,
    "remotes": ["192.0.2.2"],
}


def load(**changes: Any) -> VxlanConf:
    raw = {**BASE, **changes}
    return VxlanConf.load({k: v for k, v in raw.items() if v is not None})


def test_defaults() -> None:
    conf = load()
    assert (conf.port, conf.learning, conf.disable_tx_checksum_offload) == (4789, True, False)
    assert (conf.bridge, conf.device_name, conf.mtu) == ("vxbr7", "vx7", None)


def test_pod_side_keys_of_the_bridge_plugin_are_accepted() -> None:
    conf = load(isDefaultGateway=True, hairpinMode=True, ipMasq=True, ipam={"type": "host-local"})
    assert conf.is_gateway and conf.hairpin_mode and conf.ip_masq and conf.has_ipam


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"vni": None}, "vni", "Field required"),
        ({"vni": 0}, "vni", "greater than or equal to 1"),
        ({"vni": 16777216}, "vni", "less than or equal to 16777215"),
        ({"vni": "seven"}, "vni", "valid integer"),
        ({"port": 0}, "port", "greater than or equal to 1"),
        ({"port": 65536}, "port", "less than or equal to 65535"),
        ({"remotes": ["192.0.2"]}, "remotes", "not a valid IP address"),
        ({"remotes": ["192.0.2.2/24"]}, "remotes", "not a valid IP address"),
        ({"remotes": "192.0.2.2"}, "remotes", "must be a list"),
        ({"remotes": ["239.1.1.1"]}, "remotes", "not a unicast VTEP"),
        ({"remotes": ["192.0.2.2", "192.0.2.2"]}, "remotes", "twice"),
        ({"remotes": None}, "(config)", "exactly one of remotes"),
        ({"group": "239.1.1.1"}, "(config)", "exactly one of remotes"),
        ({"remotes": None, "group": "192.0.2.9"}, "group", "not a multicast address"),
        ({"localIP": "fd00::1"}, "(config)", "all be IPv4 or all IPv6"),
        ({"localIP": "nope"}, "localIP", "not a valid IP address"),
        ({"underlay": "x" * 16}, "underlay", "at most 15"),
        ({"bridge": "b" * 16}, "bridge", "at most 15"),
        ({"mtu": 20}, "mtu", "greater than or equal to 68"),
        ({"hairpinMode": True, "promiscMode": True}, "(config)", "hairpin"),
    ],
)
def test_invalid_config_is_code_7_naming_the_key(changes: dict[str, Any], key: str, words: str) -> None:
    raw = {**BASE, **changes}
    with pytest.raises(InvalidConfig) as info:
        VxlanConf.load({k: v for k, v in raw.items() if v is not None})
    assert info.value.code == 7
    assert f"{key}" in info.value.msg and words in info.value.msg, info.value.msg


def test_the_executable_reports_code_7(cni: Runner) -> None:
    out = cni("vxlan", "ADD", {**BASE, "vni": 0}, netns="/proc/self/ns/net", env={"CNI_NETNS_OVERRIDE": "1"})
    assert out.error_code == 7 and "vni" in out.json["msg"]


def test_an_mtu_the_underlay_cannot_carry_is_code_7() -> None:
    link = links.Link(
        index=1,
        name="up0",
        mac="",
        mtu=1500,
        kind="veth",
        master=0,
        up=True,
        promisc=False,
        carrier=True,
        alias="",
        peer_index=0,
        altnames=(),
    )
    under = Underlay(link, ipaddress.ip_address("192.0.2.1"))
    assert spec_for(load(), under).mtu == 1450
    with pytest.raises(InvalidConfig) as info:
        spec_for(load(mtu=1451), under)
    assert info.value.code == 7 and info.value.msg.startswith("mtu:")


def test_an_empty_remotes_list_is_a_node_without_peers_yet() -> None:
    conf = load(remotes=[])
    assert conf.remotes == [] and conf.group is None and conf.ip_version is None
