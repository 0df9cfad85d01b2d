"""sriov-cni's own files, which we read (pods it attached) and write (pods we attach).

sriov-cni caches the NetConf of each attachment in `<dir>/<containerID>-<ifname>` (JSON, 0600):
the config as loaded plus `Master` (PF), `VFID`, `MAC`, `MTU` and `OrigVfState`, the VF as it
was before ADD (`HostIFName`, `EffectiveMAC`, `AdminMAC`, `Vlan`, `VlanQoS`, `VlanProto` as
an EtherType, `SpoofChk`, `Trust`, `LinkState` 0/1/2, the rates, `MTU`); and it marks the VF
taken with `<dir>/pci/<PCI address>` holding the pod's netns path. Its DEL reads only these:
it puts back the PF-side settings the config named (vlan, MAC, spoofchk, trust, rates, link
state) from `OrigVfState`, renames the netdev to `HostIFName`, restores its MAC (when `MAC`
was set) and MTU, moves it home, and removes both files.

So ADD writes both beside our own record, which DEL, CHECK and GC use first; a node rolled back
to sriov-cni then releases our VFs as its own. A DEL without a record of ours reads sriov-cni's
cache instead (`to_record`), so VFs sriov-cni attached are given back just as completely.
"""

from __future__ import annotations

from typing import Any

from pycni.hw.sysfs import SysFs
from pycni.net.vf_state import ZERO_MAC, VfSettings, VfState, normal_mac
from pycni.plugins.sriov.state import VfAttachment

#: `OrigVfState.VlanProto` and `vlanProto` as sriov-cni writes them (EtherType, lower-case name).
PROTO_TYPE = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
PROTO_NAME = {"802.1Q": "802.1q", "802.1ad": "802.1ad"}
LINK_STATE = {"auto": 0, "enable": 1, "disable": 2}
ON_OFF = {True: "on", False: "off"}
#: The key of ours in a cache we wrote: sriov-cni ignores keys it does not know.
OURS = "pycni"


def netconf(rec: VfAttachment, config: dict[str, Any]) -> dict[str, Any]:
    """`rec` as sriov-cni's cached NetConf (`types.NetConf` keys of `config` as Go keeps them, with
    `ipam` reduced to its type, then sriov-cni's own)."""
    keys: tuple[str, ...] = ("cniVersion", "name", "type", "capabilities")
    base: dict[str, Any] = {k: config[k] for k in keys if k in config}
    ipam = config.get("ipam")
    base["ipam"] = {"type": ipam["type"]} if isinstance(ipam, dict) and "type" in ipam else {}
    base["dns"] = config["dns"] if isinstance(config.get("dns"), dict) else {}
    applied, orig = rec.applied, rec.original
    vlan_set = applied.vlan is not None
    data: dict[str, Any] = {
        **base,
        "OrigVfState": {
            "HostIFName": rec.name,
            "SpoofChk": orig.spoofchk,
            "Trust": orig.trust,
            "AdminMAC": orig.mac,
            "EffectiveMAC": rec.mac,
            "Vlan": orig.vlan,
            "VlanQoS": orig.qos,
            "VlanProto": PROTO_TYPE[orig.vlan_proto],
            "MinTxRate": orig.min_tx_rate,
            "MaxTxRate": orig.max_tx_rate,
            "LinkState": LINK_STATE[orig.link_state],
            "MTU": rec.mtu,
        },
        "DPDKMode": rec.mode == "userspace",
        "Master": rec.pf_netdev,
        "MAC": applied.mac or "",
        "MTU": rec.mtu or None,
        "vlan": applied.vlan,
        "vlanQoS": (applied.qos or 0) if vlan_set else None,
        "vlanProto": PROTO_NAME[applied.vlan_proto or "802.1Q"] if vlan_set else None,
        "deviceID": rec.pci,
        "VFID": rec.vf_index,
        "min_tx_rate": applied.min_tx_rate,
        "max_tx_rate": applied.max_tx_rate,
        "runtimeConfig": _runtime_mac(config),
        OURS: {"network": rec.network, "containerID": rec.container_id, "ifname": rec.ifname},
    }
    for key, value in (("spoofchk", applied.spoofchk), ("trust", applied.trust)):
        if value is not None:
            data[key] = ON_OFF[value]
    if applied.link_state is not None:
        data["link_state"] = applied.link_state
    return data


def _runtime_mac(config: dict[str, Any]) -> dict[str, Any]:
    runtime = config.get("runtimeConfig")
    mac = runtime.get("mac") if isinstance(runtime, dict) else None
    return {"mac": mac} if mac else {}


def to_record(data: dict[str, Any], container_id: str, ifname: str, netns: str, sysfs: SysFs) -> VfAttachment:
    """sriov-cni's cached NetConf as our record: what its own DEL would put back, and nothing more."""
    orig = data.get("OrigVfState") or {}
    pci = str(data["deviceID"])
    userspace = bool(data.get("DPDKMode")) or sysfs.is_userspace_driver(pci)
    return VfAttachment.model_validate(
        {
            "network": str(data.get("name", "")),
            "container_id": container_id,
            "ifname": ifname,
            "netns": netns,
            "mode": "userspace" if userspace else "netdev",
            "selector": f"deviceID={pci}",
            "pci_address": pci,
            "pf_netdev": str(data.get("Master", "")),
            "vf_index": int(data.get("VFID", 0)),
            "name": "" if userspace else str(orig.get("HostIFName", "")),
            "mac": _mac(orig.get("EffectiveMAC")),
            "mtu": int(orig.get("MTU") or 0),
            "pod_mac": _mac(data.get("MAC")),
            "original": _original(orig),
            "applied": _applied(data),
        }
    )


def _mac(value: Any) -> str:
    try:
        return normal_mac(str(value)) if value else ""
    except ValueError:
        return ""


def _original(orig: dict[str, Any]) -> VfState:
    proto = {v: k for k, v in PROTO_TYPE.items()}.get(int(orig.get("VlanProto") or 0x8100), "802.1Q")
    state = {v: k for k, v in LINK_STATE.items()}.get(int(orig.get("LinkState") or 0), "auto")
    return VfState(
        mac=_mac(orig.get("AdminMAC")) or ZERO_MAC,
        vlan=int(orig.get("Vlan") or 0),
        qos=int(orig.get("VlanQoS") or 0),
        vlan_proto=proto,
        spoofchk=bool(orig.get("SpoofChk", True)),
        trust=bool(orig.get("Trust", False)),
        link_state=state,
        min_tx_rate=int(orig.get("MinTxRate") or 0),
        max_tx_rate=int(orig.get("MaxTxRate") or 0),
    )


def _applied(data: dict[str, Any]) -> VfSettings:
    """The keys sriov-cni's `ResetVFConfig` restores, as the config it cached named them."""
    keys: dict[str, Any] = {}
    if data.get("vlan") is not None:
        proto = str(data.get("vlanProto") or "802.1q").lower()
        keys.update(vlan=int(data["vlan"]), qos=int(data.get("vlanQoS") or 0))
        keys["vlan_proto"] = "802.1ad" if proto == "802.1ad" else "802.1Q"
    if data.get("MAC"):
        keys["mac"] = str(data["MAC"])
    for key in ("spoofchk", "trust"):
        if data.get(key) in ("on", "off"):
            keys[key] = data[key] == "on"
    if data.get("link_state") in LINK_STATE:
        keys["link_state"] = data["link_state"]
    if data.get("min_tx_rate") is not None or data.get("max_tx_rate") is not None:
        keys.update(
            min_tx_rate=int(data.get("min_tx_rate") or 0), max_tx_rate=int(data.get("max_tx_rate") or 0)
        )
    return VfSettings.model_validate(keys)
