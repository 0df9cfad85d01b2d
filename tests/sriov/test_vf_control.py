"""The two `VfControl` implementations: the JSON state file, and rtnetlink (as far as no SR-IOV allows).

The netlink side is checked three ways: the attributes it builds, encoded with pyroute2's own
`ifinfmsg`, against the kernel's `struct ifla_vf_*` layout packed by hand; a `RTM_NEWLINK` reply
carrying `IFLA_VFINFO_LIST`, laid out byte by byte as the kernel sends it, parsed back; and the
real kernel, whose veth has no VFs: reading reports that, and setting is refused with a clear error.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from pycni.cni.errors import InternalError
from pycni.cni.settings import Settings
from pycni.hw.vf_control import FileVfControl, vf_control
from pycni.net import netns
from pycni.net.links import LinkNotFound
from pycni.net.sriov_vf import NetlinkVfControl, VfNotFound, parse_vf_info_list, vf_info_list
from pycni.net.vf_state import VfSettings, VfState
from tests.helpers.netns import Netns

# -- the state file ------------------------------------------------------------------------------


def test_a_vf_missing_from_the_file_reads_as_the_defaults(tmp_path: Path) -> None:
    control = FileVfControl(tmp_path / "absent.json")
    assert control.get("ens1f0", 3) == VfState()
    assert control.get("ens1f0", 3).model_dump() == {
        "mac": "00:00:00:00:00:00", "vlan": 0, "qos": 0, "vlan_proto": "802.1Q", "spoofchk": True,
        "trust": False, "link_state": "auto", "min_tx_rate": 0, "max_tx_rate": 0,
    }  # fmt: skip


def test_set_writes_the_documented_shape_and_keeps_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "vf.json"
    path.write_text(
        json.dumps(
            {
                "comment": "seeded by hand",
                "ens1f0": {"0": {"mac": "AA:BB:CC:DD:EE:01", "vlan": 3, "note": "keep me"}, "x": 1},
            }
        )
    )
    control = FileVfControl(path)
    assert control.get("ens1f0", 0) == VfState(mac="aa:bb:cc:dd:ee:01", vlan=3)

    control.set("ens1f0", 0, VfSettings(trust=True, max_tx_rate=100))
    control.set("ens1f1", 2, VfSettings(vlan=5, qos=1, vlan_proto="802.1ad"))

    data = json.loads(path.read_text())
    assert data["comment"] == "seeded by hand" and data["ens1f0"]["x"] == 1
    assert data["ens1f0"]["0"] == {
        "mac": "aa:bb:cc:dd:ee:01", "vlan": 3, "qos": 0, "vlan_proto": "802.1Q", "spoofchk": True,
        "trust": True, "link_state": "auto", "min_tx_rate": 0, "max_tx_rate": 100, "note": "keep me",
    }  # fmt: skip
    assert data["ens1f1"]["2"]["vlan_proto"] == "802.1ad"
    assert list(tmp_path.iterdir()) == [path] or {p.name for p in tmp_path.iterdir()} == {
        path.name,
        f".{path.name}.lock",
    }


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    control = FileVfControl(tmp_path / "vf.json")
    threads = [
        threading.Thread(target=control.set, args=("ens1f0", i, VfSettings(vlan=100 + i))) for i in range(24)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: control.get("ens1f0", i).vlan for i in range(24)} == {i: 100 + i for i in range(24)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["a list"]', "must map PF names"),
        ('{"ens1f0": {"0": {"vlan": "high"}}}', "entry ens1f0/0: vlan"),
        ('{"ens1f0": {"0": {"link_state": "up"}}}', "link_state"),
    ],
)
def test_a_malformed_file_is_an_error_never_reset(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vf.json"
    path.write_text(content)
    with pytest.raises(InternalError, match=message):
        FileVfControl(path).set("ens1f0", 0, VfSettings(vlan=1))
    assert path.read_text() == content


def test_the_settings_choose_the_implementation(tmp_path: Path) -> None:
    with netns.rtnl() as ipr:
        assert isinstance(vf_control(Settings(vf_state_file=str(tmp_path / "f.json")), ipr), FileVfControl)
        assert isinstance(vf_control(Settings(), ipr), NetlinkVfControl)
    assert Settings.from_env({"PYCNI_SRIOV_VF_STATE": "/x.json"}).vf_state_file == "/x.json"


# -- netlink: the messages -------------------------------------------------------------------------

IFLA_VFINFO_LIST = 22
IFLA_VF_INFO = 1
IFLA_VF_MAC, IFLA_VF_VLAN, IFLA_VF_TX_RATE, IFLA_VF_SPOOFCHK, IFLA_VF_LINK_STATE = 1, 2, 3, 4, 5
IFLA_VF_RATE, IFLA_VF_RSS_QUERY_EN, IFLA_VF_STATS, IFLA_VF_TRUST = 6, 7, 8, 9
IFLA_VF_VLAN_LIST, IFLA_VF_VLAN_INFO = 12, 1


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute: length, type, payload, padded to 4 bytes.

    Nests carry no NLA_F_NESTED flag: the kernel fills VF info with `nla_nest_start_noflag`, and
    iproute2's `ip link set <pf> vf N` sends its nests without it too.
    """
    head = struct.pack("=HH", 4 + len(payload), kind)
    return head + payload + b"\0" * (-len(payload) % 4)


def vf_mac(vf: int, mac: str) -> bytes:  # struct ifla_vf_mac { __u32 vf; __u8 mac[32]; }
    return nla(IFLA_VF_MAC, struct.pack("=I32s", vf, bytes.fromhex(mac.replace(":", ""))))


def u32_pair(kind: int, vf: int, value: int) -> bytes:  # ifla_vf_{spoofchk,trust,link_state,tx_rate}
    return nla(kind, struct.pack("=II", vf, value))


def vf_vlan_info(vf: int, vlan: int, qos: int, proto: int) -> bytes:
    # struct ifla_vf_vlan_info { __u32 vf; __u32 vlan; __u32 qos; __be16 vlan_proto; }
    return nla(IFLA_VF_VLAN_INFO, struct.pack("=III", vf, vlan, qos) + struct.pack(">H", proto))


def encoded_vf_list(value: dict[str, Any]) -> bytes:
    """The IFLA_VFINFO_LIST attribute as pyroute2 encodes it in a real `ifinfmsg`."""
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = 7
    msg["attrs"] = [("IFLA_VFINFO_LIST", value)]
    msg.encode()
    return bytes(msg.data[16 + 16 :])  # after nlmsghdr and ifinfomsg


CURRENT = VfState(mac="02:00:00:00:00:09", vlan=4, qos=2, min_tx_rate=5, max_tx_rate=50)
BUILT: list[tuple[str, VfSettings, bytes]] = [
    ("mac", VfSettings(mac="aa:bb:cc:dd:ee:ff"), vf_mac(3, "aa:bb:cc:dd:ee:ff")),
    (
        "vlan",
        VfSettings(vlan=100, qos=5, vlan_proto="802.1Q"),
        nla(IFLA_VF_VLAN, struct.pack("=III", 3, 100, 5)),
    ),
    (
        "vlan",
        VfSettings(vlan=100, qos=5, vlan_proto="802.1ad"),
        nla(IFLA_VF_VLAN_LIST, vf_vlan_info(3, 100, 5, 0x88A8)),
    ),
    ("rate", VfSettings(max_tx_rate=1000), nla(IFLA_VF_RATE, struct.pack("=III", 3, 5, 1000))),
    ("spoofchk", VfSettings(spoofchk=False), u32_pair(IFLA_VF_SPOOFCHK, 3, 0)),
    ("trust", VfSettings(trust=True), u32_pair(IFLA_VF_TRUST, 3, 1)),
    ("link_state", VfSettings(link_state="disable"), u32_pair(IFLA_VF_LINK_STATE, 3, 2)),
]


@pytest.mark.parametrize(
    ("group", "settings", "attr"), BUILT, ids=[f"{g}-{i}" for i, (g, _, _) in enumerate(BUILT)]
)
def test_each_setting_encodes_to_the_kernel_layout(group: str, settings: VfSettings, attr: bytes) -> None:
    expected = nla(IFLA_VFINFO_LIST, nla(IFLA_VF_INFO, attr))
    assert encoded_vf_list(vf_info_list(3, group, settings, CURRENT)) == expected


def test_groups_are_applied_in_the_reference_order() -> None:
    every = VfSettings(
        link_state="auto", trust=False, spoofchk=True, max_tx_rate=1, mac="02:00:00:00:00:01", vlan=1
    )
    assert every.groups() == ["vlan", "mac", "rate", "spoofchk", "trust", "link_state"]


def recorded_reply() -> bytes:
    """An RTM_NEWLINK reply for PF `ens1f0` with two VFs, as the kernel lays it out (rtnl_fill_vf)."""

    def vf_info(
        vf: int,
        mac: str,
        vlan: int,
        qos: int,
        proto: int,
        spoof: int,
        state: int,
        rates: tuple[int, int],
        trust: int,
    ) -> bytes:
        body = (
            vf_mac(vf, mac)
            + nla(IFLA_VF_VLAN, struct.pack("=III", vf, vlan, qos))
            + nla(IFLA_VF_VLAN_LIST, vf_vlan_info(vf, vlan, qos, proto))
            + u32_pair(IFLA_VF_TX_RATE, vf, rates[1])
            + nla(IFLA_VF_RATE, struct.pack("=III", vf, *rates))
            + u32_pair(IFLA_VF_SPOOFCHK, vf, spoof)
            + u32_pair(IFLA_VF_LINK_STATE, vf, state)
            + u32_pair(IFLA_VF_RSS_QUERY_EN, vf, 0)
            + nla(IFLA_VF_STATS, nla(0, struct.pack("=Q", 1234)))
            + u32_pair(IFLA_VF_TRUST, vf, trust)
        )
        return nla(IFLA_VF_INFO, body)

    vfs = vf_info(0, "02:00:00:00:00:10", 0, 0, 0x8100, 1, 0, (0, 0), 0) + vf_info(
        1, "0a:58:00:00:00:11", 300, 6, 0x88A8, 0, 2, (10, 400), 0xFFFFFFFF
    )
    attrs = nla(3, b"ens1f0\0") + nla(21, struct.pack("=I", 2)) + nla(IFLA_VFINFO_LIST, vfs)
    ifi = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, 7, 0x1003, 0)
    header = struct.pack("=IHHII", 16 + len(ifi) + len(attrs), 16, 0, 1, 0)  # RTM_NEWLINK
    return header + ifi + attrs


def test_a_recorded_reply_parses_to_every_vf_state() -> None:
    msg = ifinfmsg(recorded_reply())
    msg.decode()
    assert msg.get("IFLA_IFNAME") == "ens1f0"
    assert parse_vf_info_list(msg) == {
        0: VfState(mac="02:00:00:00:00:10"),
        1: VfState(
            mac="0a:58:00:00:00:11", vlan=300, qos=6, vlan_proto="802.1ad", spoofchk=False,
            link_state="disable", min_tx_rate=10, max_tx_rate=400,
        ),  # trust 0xffffffff: the driver does not report it, the default stands
    }  # fmt: skip


def test_a_link_without_vfs_parses_to_none() -> None:
    msg = ifinfmsg()
    msg["attrs"] = [("IFLA_IFNAME", "eth0")]
    assert parse_vf_info_list(msg) == {}


# -- netlink: the real kernel ----------------------------------------------------------------------


def test_netlink_on_a_link_without_vfs(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns("svk")
    ns.run("ip", "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
    with netns.rtnl(ns.path) as ipr:
        control = NetlinkVfControl(ipr)
        with pytest.raises(VfNotFound, match="PF pf0 reports no VF 0"):
            control.get("pf0", 0)
        with pytest.raises(LinkNotFound, match="PF nope is not in the node network namespace"):
            control.get("nope", 0)
        control.set("pf0", 0, VfSettings())  # nothing to change: nothing is sent
        with pytest.raises(VfNotFound):
            control.set("pf0", 0, VfSettings(trust=True))


def test_netlink_refusal_names_the_setting(
    make_netns: Callable[..., Netns], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel refuses VF settings on a veth (no ndo_set_vf_*): the error names what was refused."""
    ns = make_netns("svk")
    ns.run("ip", "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p")
    with netns.rtnl(ns.path) as ipr:
        control = NetlinkVfControl(ipr)
        monkeypatch.setattr(control, "get", lambda pf, vf: VfState())
        with pytest.raises(
            InternalError, match="PF pf0 refused to set trust on VF 0: Operation not supported"
        ):
            control.set("pf0", 0, VfSettings(trust=True))
