"""The PF-side settings of one SR-IOV VF: what a PF reports for it and what a plugin changes.

These settings live on the PF, not on the VF's netdev: the kernel exposes them in the PF's
`IFLA_VFINFO_LIST` and takes changes through `IFLA_VF_*` attributes (`ip link set <pf> vf N ...`).
`VfState` is a full snapshot (what `ip link show <pf>` prints per VF); `VfSettings` names only the
keys to change, so restoring a VF puts back exactly what was changed, from its snapshot, and never
touches a setting a driver may not support (igb has no link state). Both implementations of
`pycni.hw.vf_control.VfControl` (netlink and the JSON state file) speak these two types, and the
file's entries have `VfState`'s shape exactly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ZERO_MAC = "00:00:00:00:00:00"

VlanProto = Literal["802.1Q", "802.1ad"]
LinkState = Literal["auto", "enable", "disable"]

#: The order changes are applied in (the reference's): VLAN first, so the VF never passes traffic
#: untagged under its new MAC; link state last, so the VF comes up fully configured.
APPLY_ORDER = ("vlan", "mac", "rate", "spoofchk", "trust", "link_state")


def normal_mac(value: str) -> str:
    """Lower case, ':'-separated; raises ValueError for anything but six hex octets."""
    mac = value.strip().lower().replace("-", ":")
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise ValueError(f"{value!r} is not a MAC address such as '0a:58:0a:01:02:03'")
    return mac


class VfState(BaseModel):
    """Every PF-side setting of one VF, as the PF reports it (a VF never configured: the defaults)."""

    model_config = ConfigDict(frozen=True)

    mac: str = Field(ZERO_MAC, description="Administrative MAC; all zeros when none is set.")
    vlan: int = Field(0, ge=0, le=4095, description="VLAN ID the PF tags the VF's traffic with; 0 = none.")
    qos: int = Field(0, ge=0, le=7, description="802.1p priority of that tag.")
    vlan_proto: VlanProto = Field("802.1Q", description="TPID of the tag.")
    spoofchk: bool = Field(True, description="The PF drops frames whose source MAC is not the VF's.")
    trust: bool = Field(False, description="The VF may change its MAC and enter promiscuous mode.")
    link_state: LinkState = Field("auto", description="Follow the PF's link, or force it up/down.")
    min_tx_rate: int = Field(0, ge=0, description="Guaranteed transmit rate, Mbps; 0 = none.")
    max_tx_rate: int = Field(0, ge=0, description="Transmit rate limit, Mbps; 0 = none.")

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        return normal_mac(value)


class VfSettings(BaseModel):
    """The PF-side settings to change on one VF; None leaves a setting as it is.

    `vlan`, `qos` and `vlan_proto` travel together (one netlink attribute carries them), and so do
    the two rates.
    """

    model_config = ConfigDict(frozen=True)

    mac: str | None = None
    vlan: int | None = Field(None, ge=0, le=4095)
    qos: int | None = Field(None, ge=0, le=7)
    vlan_proto: VlanProto | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: LinkState | None = None
    min_tx_rate: int | None = Field(None, ge=0)
    max_tx_rate: int | None = Field(None, ge=0)

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else normal_mac(value)

    @property
    def empty(self) -> bool:
        return not self.model_dump(exclude_none=True)

    def changes(self) -> dict[str, object]:
        """The keys to change, with their new values."""
        return self.model_dump(exclude_none=True)

    def groups(self) -> list[str]:
        """The groups of `APPLY_ORDER` this touches, in that order."""
        keys = set(self.changes())
        members = {
            "vlan": {"vlan", "qos", "vlan_proto"},
            "mac": {"mac"},
            "rate": {"min_tx_rate", "max_tx_rate"},
            "spoofchk": {"spoofchk"},
            "trust": {"trust"},
            "link_state": {"link_state"},
        }
        return [group for group in APPLY_ORDER if keys & members[group]]

    def applied_to(self, state: VfState) -> VfState:
        """`state` with these changes made."""
        return state.model_copy(update=self.changes())

    def undo_from(self, original: VfState) -> VfSettings:
        """The same keys, set back to their values in `original` (the snapshot taken before)."""
        return VfSettings.model_validate({key: getattr(original, key) for key in self.changes()})

    def differences(self, state: VfState) -> list[str]:
        """`key: have X, want Y` for every key this sets that `state` does not match (CHECK)."""
        return [
            f"{key}: the PF reports {getattr(state, key)!r}, expected {want!r}"
            for key, want in self.changes().items()
            if getattr(state, key) != want
        ]
