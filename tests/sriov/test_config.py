"""sriov-cni's keys: defaults, validation (code 7 naming the key), and what they ask of the PF."""

from __future__ import annotations

from typing import Any

import pytest

from pycni.cni.errors import InvalidConfig, InvalidEnvironment
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.net.vf_state import VfSettings
from pycni.plugins.sriov.config import SriovConf
from tests.helpers.cni import Runner

BASE: dict[str, Any] = {"cniVersion": "1.1.0", "name": "net", "type": "sriov", "deviceID": "0000:3b:02.1"}


def load(**keys: Any) -> SriovConf:
    return SriovConf.load({**BASE, **keys})


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({"deviceID": "3b:02.1"}, "deviceID"),
        ({"pciBusID": "nonsense"}, "pciBusID"),
        ({"vlan": 4095}, "vlan"),
        ({"vlan": -1}, "vlan"),
        ({"vlanQoS": 8, "vlan": 5}, "vlanQoS"),
        ({"vlanQoS": 1}, "vlanQoS needs vlan"),
        ({"vlan": 0, "vlanQoS": 1}, "vlanQoS needs a non-zero vlan"),
        ({"vlanProto": "802.1ad"}, "vlanProto needs vlan"),
        ({"vlan": 0, "vlanProto": "802.1AD"}, "802.1ad needs a non-zero vlan"),
        ({"vlan": 5, "vlanProto": "qinq"}, "vlanProto"),
        ({"mac": "not-a-mac"}, "mac"),
        ({"mac": "01:00:5e:00:00:01"}, "multicast"),
        ({"spoofchk": "yes"}, "spoofchk"),
        ({"trust": True}, "trust"),
        ({"link_state": "up"}, "link_state"),
        ({"min_tx_rate": -1}, "min_tx_rate"),
        ({"min_tx_rate": 100, "max_tx_rate": 10}, "min_tx_rate (100 Mbps) must not exceed"),
        ({"logLevel": "trace"}, "logLevel"),
        ({"runtimeConfig": {"deviceID": "0000:3b:02.2"}}, "name different devices"),
    ],
)
def test_invalid_values_are_code_7_naming_the_key(keys: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        load(**keys)
    assert err.value.code == 7 and named in err.value.msg


def test_defaults_change_nothing_on_the_pf() -> None:
    conf = load()
    assert conf.vf_settings(None) == VfSettings()
    assert conf.vf_address == "0000:3b:02.1"


def test_vlan_brings_qos_and_proto_defaults() -> None:
    settings = load(vlan=7).vf_settings(None)
    assert settings.changes() == {"vlan": 7, "qos": 0, "vlan_proto": "802.1Q"}
    settings = load(vlan=7, vlanQoS=3, vlanProto="802.1AD").vf_settings(None)
    assert settings.changes() == {"vlan": 7, "qos": 3, "vlan_proto": "802.1ad"}


def test_every_key_maps_to_a_pf_setting() -> None:
    conf = load(
        vlan=9, spoofchk="off", trust="on", link_state="disable", min_tx_rate=0, max_tx_rate=50,
        mac="0A:58:00:00:00:01",
    )  # fmt: skip
    assert conf.vf_settings(conf.mac).changes() == {
        "mac": "0a:58:00:00:00:01", "vlan": 9, "qos": 0, "vlan_proto": "802.1Q", "spoofchk": False,
        "trust": True, "link_state": "disable", "min_tx_rate": 0, "max_tx_rate": 50,
    }  # fmt: skip


@pytest.mark.parametrize(
    "keys",
    [
        {"deviceID": None, "runtimeConfig": {"deviceID": "0000:3B:02.1"}},
        {"deviceID": None, "pciBusID": "0000:3b:02.1"},
        {"pciBusID": "0000:3b:02.1", "runtimeConfig": {"deviceID": "0000:3b:02.1"}},
    ],
)
def test_device_id_from_any_of_its_keys(keys: dict[str, Any]) -> None:
    raw = {k: v for k, v in {**BASE, **keys}.items() if v is not None}
    assert SriovConf.load(raw).vf_address == "0000:3b:02.1"


def test_keys_match_in_any_case_as_in_go() -> None:
    conf = SriovConf.load(
        {"name": "n", "DeviceID": "0000:3b:02.1", "VLAN": 4, "VlanQos": 2, "MAC": "0a:58:00:00:00:01"}
    )
    assert (conf.vf_address, conf.vlan, conf.vlan_qos, conf.mac) == (
        "0000:3b:02.1",
        4,
        2,
        "0a:58:00:00:00:01",
    )


def rt(cni_args: str = "") -> RuntimeArgs:
    return RuntimeArgs.from_env(
        Command.DEL, {"CNI_CONTAINERID": "c", "CNI_IFNAME": "net1", "CNI_PATH": "/x", "CNI_ARGS": cni_args}
    )


def test_mac_from_cni_args_and_runtime_config() -> None:
    assert load(mac="0a:00:00:00:00:01").effective_mac(rt()) == "0a:00:00:00:00:01"
    assert load(mac="0a:00:00:00:00:01").effective_mac(rt("MAC=0a:00:00:00:00:02")) == "0a:00:00:00:00:02"
    conf = load(mac="0a:00:00:00:00:01", runtimeConfig={"mac": "0A:00:00:00:00:03"})
    assert conf.effective_mac(rt("MAC=0a:00:00:00:00:02")) == "0a:00:00:00:00:03"
    with pytest.raises(InvalidEnvironment, match="CNI_ARGS MAC"):
        load().effective_mac(rt("MAC=zz"))
    with pytest.raises(InvalidConfig, match=r"runtimeConfig\.mac"):
        load(runtimeConfig={"mac": "ff:ff:ff:ff:ff:ff"}).effective_mac(rt())


def test_unknown_and_internal_keys_are_kept_for_delegates() -> None:
    """sriov-cni's cached fields (`Master`, `VFID`, ...) may come back in a config: ignored, kept."""
    conf = load(Master="ens1f0", VFID=3, somethingElse={"a": 1})
    assert conf.raw["Master"] == "ens1f0" and conf.raw["somethingElse"] == {"a": 1}


def test_the_executable_reports_code_7_with_the_key(cni: Runner) -> None:
    out = cni("sriov", "ADD", {**BASE, "vlan": 5000}, netns="/run/netns/none")
    assert out.json == {
        "cniVersion": "1.1.0",
        "code": 7,
        "msg": "invalid sriov config: vlan: Input should be less than or equal to 4094",
    }
