"""PF-side VF settings over rtnetlink: `ip link show <pf>` / `ip link set <pf> vf N ...` in Python.

Reading sends `RTM_GETLINK` for the PF with `IFLA_EXT_MASK = RTEXT_FILTER_VF`; the reply's
`IFLA_VFINFO_LIST` holds one `IFLA_VF_INFO` per VF (`vf_mac`, `vf_vlan`, `vf_vlan_list`,
`vf_spoofchk`, `vf_trust`, `vf_link_state`, `vf_rate`, ...: `struct ifla_vf_*` in linux/if_link.h).
Writing sends one `RTM_NEWLINK` per group of settings, in `APPLY_ORDER`, so a driver that refuses
one (igb has no link state, many NICs no 802.1ad) is named in the error, and what came before it
is known to be applied.

`vf_info_list` and `parse_vf_info_list` are pure: tests encode the first with pyroute2's message
classes and decode recorded replies with the second, without SR-IOV hardware.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

from pycni.cni.errors import InternalError, NotFound
from pycni.net.links import LinkNotFound, get_link
from pycni.net.nlsock import Rtnl, tolerating
from pycni.net.vf_state import LinkState, VfSettings, VfState

RTEXT_FILTER_VF = 1  # linux/rtnetlink.h: include IFLA_VFINFO_LIST in RTM_GETLINK replies
ETH_P_8021AD = 0x88A8
#: A `__u32` setting the driver does not report (spoofchk/trust on older drivers).
UNSUPPORTED = 0xFFFFFFFF
LINK_STATES: dict[LinkState, int] = {"auto": 0, "enable": 1, "disable": 2}  # IFLA_VF_LINK_STATE_*
#: Some drivers (i40e, iavf) apply an administrative MAC asynchronously: wait this long for it.
MAC_SETTLE_SECONDS = 2.0


class VfNotFound(NotFound):
    """The PF does not report that VF (SR-IOV disabled, or fewer VFs than the index)."""


def vf_info_list(vf: int, group: str, settings: VfSettings, current: VfState) -> dict[str, Any]:
    """The `IFLA_VFINFO_LIST` value that applies one group of `settings` to VF `vf`.

    Keys a group carries but `settings` leaves unset (a rate, the QoS of a VLAN) keep `current`.
    """
    want = settings.applied_to(current)
    attr: tuple[str, dict[str, Any]]
    if group == "vlan" and want.vlan_proto == "802.1ad":
        info = {"vf": vf, "vlan": want.vlan, "qos": want.qos, "proto": ETH_P_8021AD}
        attr = ("IFLA_VF_VLAN_LIST", {"attrs": [("IFLA_VF_VLAN_INFO", info)]})
    elif group == "vlan":
        attr = ("IFLA_VF_VLAN", {"vf": vf, "vlan": want.vlan, "qos": want.qos})
    elif group == "mac":
        attr = ("IFLA_VF_MAC", {"vf": vf, "mac": want.mac})
    elif group == "rate":
        attr = ("IFLA_VF_RATE", {"vf": vf, "min_tx_rate": want.min_tx_rate, "max_tx_rate": want.max_tx_rate})
    elif group == "spoofchk":
        attr = ("IFLA_VF_SPOOFCHK", {"vf": vf, "spoofchk": int(want.spoofchk)})
    elif group == "trust":
        attr = ("IFLA_VF_TRUST", {"vf": vf, "trust": int(want.trust)})
    elif group == "link_state":
        attr = ("IFLA_VF_LINK_STATE", {"vf": vf, "link_state": LINK_STATES[want.link_state]})
    else:
        raise ValueError(f"unknown VF setting group {group!r}")
    return {"attrs": [("IFLA_VF_INFO", {"attrs": [attr]})]}


def parse_vf_info_list(link_msg: Any) -> dict[int, VfState]:
    """VF index -> state, from a decoded `RTM_NEWLINK` reply of the PF (empty without VFs)."""
    vfinfo = link_msg.get("IFLA_VFINFO_LIST")
    if not vfinfo:
        return {}
    return dict(_vf_state(info) for info in vfinfo.get_attrs("IFLA_VF_INFO"))


def _vf_state(info: Any) -> tuple[int, VfState]:
    mac = info.get("IFLA_VF_MAC")
    vlan = info.get("IFLA_VF_VLAN") or {}
    state: dict[str, Any] = {"mac": mac["mac"], "vlan": vlan.get("vlan", 0), "qos": vlan.get("qos", 0)}
    vlan_list = info.get("IFLA_VF_VLAN_LIST")
    tags = list(vlan_list.get_attrs("IFLA_VF_VLAN_INFO")) if vlan_list else []
    if tags and tags[0]["proto"] == ETH_P_8021AD:
        state["vlan_proto"] = "802.1ad"
    for key, attr in (("spoofchk", "IFLA_VF_SPOOFCHK"), ("trust", "IFLA_VF_TRUST")):
        value = (info.get(attr) or {}).get(key, UNSUPPORTED)
        if value != UNSUPPORTED:
            state[key] = bool(value)
    link_state = (info.get("IFLA_VF_LINK_STATE") or {}).get("link_state")
    by_value = {v: k for k, v in LINK_STATES.items()}
    if link_state in by_value:
        state["link_state"] = by_value[link_state]
    rate = info.get("IFLA_VF_RATE")
    if rate is not None:
        state["min_tx_rate"], state["max_tx_rate"] = rate["min_tx_rate"], rate["max_tx_rate"]
    elif info.get("IFLA_VF_TX_RATE") is not None:
        state["max_tx_rate"] = info.get("IFLA_VF_TX_RATE")["tx_rate"]
    return mac["vf"], VfState.model_validate(state)


class NetlinkVfControl:
    """`VfControl` on a real PF, through the rtnetlink of the PF's netns (the node's).

    Its requests are pyroute2's (`Rtnl.pyroute2()`): the `IFLA_VF_*` attributes are encoded by
    its message classes, and only here.
    """

    def __init__(self, ipr: Rtnl) -> None:
        self.ipr = ipr

    def get(self, pf: str, vf: int) -> VfState:
        states = parse_vf_info_list(self._pf_message(pf))
        if vf not in states:
            raise VfNotFound(f"PF {pf} reports no VF {vf} (it reports {len(states)} VFs)")
        return states[vf]

    def set(self, pf: str, vf: int, settings: VfSettings) -> None:
        if settings.empty:
            return
        index = get_link(self.ipr, pf).index
        current = self.get(pf, vf)
        for group in settings.groups():
            with tolerating(any_errno=True) as refused:
                info = vf_info_list(vf, group, settings, current)
                self.ipr.pyroute2().link("set", index=index, IFLA_VFINFO_LIST=info)
            if refused.errno is not None:
                raise InternalError(
                    f"PF {pf} refused to set {group} on VF {vf}: {os.strerror(refused.errno)}",
                    f"errno {refused.errno}",
                ) from refused.error
        if settings.mac is not None:
            self._wait_for_mac(pf, vf, settings.mac)

    def _pf_message(self, pf: str) -> Any:
        msgs = []
        with tolerating(errno.ENODEV):
            msgs = list(self.ipr.pyroute2().link("get", ifname=pf, ext_mask=RTEXT_FILTER_VF))
        if not msgs:
            raise LinkNotFound(f"PF {pf} is not in the node network namespace")
        return msgs[0]

    def _wait_for_mac(self, pf: str, vf: int, mac: str) -> None:
        deadline = time.monotonic() + MAC_SETTLE_SECONDS
        while self.get(pf, vf).mac != mac:
            if time.monotonic() > deadline:
                raise InternalError(
                    f"PF {pf} did not apply MAC {mac} to VF {vf} within {MAC_SETTLE_SECONDS}s"
                )
            time.sleep(0.05)  # the driver programs the MAC asynchronously; poll with a deadline
