"""The sriov config: sriov-cni's keys, same meaning, defaults and validation.

`deviceID` is the VF's PCI address (multus puts the device plugin's allocation there); it is also
taken from `runtimeConfig.deviceID` (capability `deviceID`) and `pciBusID`, and two of them naming
different devices is an error. It is required by ADD only: DEL, CHECK and GC find the VF through
the attachment's record, and a STATUS config may name none.

PF-side keys left out change nothing on the VF. Like sriov-cni (Go's JSON decoding), keys match
case-insensitively (`VLAN`, `deviceid`), so configs that worked there keep working.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from pycni.cni.config import NetConf, RuntimeConfig
from pycni.cni.errors import InvalidConfig, InvalidEnvironment
from pycni.cni.runtime import RuntimeArgs
from pycni.hw.sysfs import is_pci_address
from pycni.net.vf_state import VfSettings, VlanProto, normal_mac

OnOff = Literal["on", "off"]
#: sriov-cni's log levels, and the logging level each maps to.
LOG_LEVELS = {
    "panic": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
DEVICE_KEYS = ("deviceID", "runtimeConfig.deviceID", "pciBusID")


class SriovRuntimeConfig(RuntimeConfig):
    """`runtimeConfig`: `mac`, `deviceID`, and the NPWG `CNIDeviceInfoFile` (the key is case-sensitive)."""

    device_info_file: str | None = Field(
        None, alias="CNIDeviceInfoFile", description="Where to write the NPWG device-info of the VF."
    )


class SriovConf(NetConf):
    device_id: str | None = Field(None, alias="deviceID", description="The VF's PCI address, 'dddd:bb:dd.f'.")
    pci_bus_id: str | None = Field(
        None, alias="pciBusID", description="Same as deviceID (host-device's key)."
    )
    vlan: int | None = Field(
        None, ge=0, le=4094, description="VLAN the PF tags the VF's traffic with; 0 = none."
    )
    vlan_qos: int | None = Field(
        None, alias="vlanQoS", ge=0, le=7, description="802.1p priority; needs vlan."
    )
    vlan_proto: VlanProto | None = Field(
        None, alias="vlanProto", description="'802.1q' or '802.1ad' (any case); needs vlan."
    )
    mac: str | None = Field(None, description="MAC of the VF (PF-side and on its netdev).")
    spoofchk: OnOff | None = Field(None, description="PF-side source MAC check.")
    trust: OnOff | None = Field(None, description="VF trust (MAC changes, promiscuous mode).")
    link_state: Literal["auto", "enable", "disable"] | None = Field(None, description="VF link state.")
    min_tx_rate: int | None = Field(None, ge=0, description="Guaranteed transmit rate, Mbps; 0 = none.")
    max_tx_rate: int | None = Field(None, ge=0, description="Transmit rate limit, Mbps; 0 = none.")
    log_level: str | None = Field(None, alias="logLevel", description="panic, error, warning, info, debug.")
    log_file: str | None = Field(None, alias="logFile", description="Log to this file instead of stderr.")
    runtime_config: SriovRuntimeConfig = Field(default_factory=SriovRuntimeConfig, alias="runtimeConfig")

    @model_validator(mode="before")
    @classmethod
    def _keys_any_case(cls, data: Any) -> Any:
        """`VLAN` or `deviceid` mean `vlan` and `deviceID`, as Go's JSON decoding has it in sriov-cni."""
        if not isinstance(data, dict):
            return data
        names = {alias.lower(): alias for alias in _SRIOV_KEYS}
        out = dict(data)
        for key in data:
            canonical = names.get(key.lower()) if isinstance(key, str) else None
            if canonical and canonical != key and canonical not in data:
                out[canonical] = out.pop(key)
        return out

    @field_validator("device_id", "pci_bus_id")
    @classmethod
    def _bdf(cls, value: str | None) -> str | None:
        if value is not None and not is_pci_address(value):
            raise ValueError(f"{value!r} is not a PCI address such as '0000:03:02.1'")
        return value.lower() if value else value

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else unicast_mac(value)

    @field_validator("vlan_proto", mode="before")
    @classmethod
    def _proto(cls, value: Any) -> Any:
        if value is None:
            return None
        spelled = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}.get(str(value).lower())
        if spelled is None:
            raise ValueError(f"{value!r} is not a VLAN protocol: use '802.1q' or '802.1ad'")
        return spelled

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in LOG_LEVELS:
            raise ValueError(f"{value!r} is not a log level: use one of {', '.join(LOG_LEVELS)}")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _vlan_rules(self) -> Self:
        if self.vlan is None:
            for key, value in (("vlanQoS", self.vlan_qos), ("vlanProto", self.vlan_proto)):
                if value is not None:
                    raise ValueError(f"{key} needs vlan to be set")
            return self
        if self.vlan == 0 and self.vlan_qos:
            raise ValueError("vlanQoS needs a non-zero vlan")
        if self.vlan == 0 and self.vlan_proto == "802.1ad":
            raise ValueError("vlanProto 802.1ad needs a non-zero vlan")
        return self

    @model_validator(mode="after")
    def _rates(self) -> Self:
        low, high = self.min_tx_rate, self.max_tx_rate
        if low is not None and high is not None and high != 0 and low > high:
            raise ValueError(f"min_tx_rate ({low} Mbps) must not exceed max_tx_rate ({high} Mbps)")
        return self

    @model_validator(mode="after")
    def _one_device(self) -> Self:
        given = {k: v for k, v in zip(DEVICE_KEYS, self._device_ids(), strict=True) if v}
        if len(set(given.values())) > 1:
            raise ValueError(f"{' and '.join(given)} name different devices: {', '.join(given.values())}")
        return self

    def _device_ids(self) -> tuple[str | None, ...]:
        runtime = self.runtime_config.device_id
        return (self.device_id, runtime.lower() if runtime else None, self.pci_bus_id)

    @property
    def vf_address(self) -> str | None:
        """The VF's PCI address, from whichever key names it."""
        return next((v for v in self._device_ids() if v), None)

    def require_vf_address(self) -> str:
        address = self.vf_address
        if address is None:
            raise InvalidConfig("invalid sriov config: deviceID (the VF's PCI address) is required")
        if not is_pci_address(address):
            raise InvalidConfig(
                f"invalid sriov config: runtimeConfig.deviceID: {address!r} is not a PCI address"
            )
        return address

    def effective_mac(self, rt: RuntimeArgs) -> str | None:
        """`mac`, overridden by CNI_ARGS `MAC`, overridden by `runtimeConfig.mac` (sriov-cni's order)."""
        mac = self.mac
        from_args = rt.arg("MAC")
        if from_args:
            try:
                mac = unicast_mac(from_args)
            except ValueError as err:
                raise InvalidEnvironment(f"CNI_ARGS MAC: {err}") from None
        if self.runtime_config.mac:
            try:
                mac = unicast_mac(self.runtime_config.mac)
            except ValueError as err:
                raise InvalidConfig(f"invalid sriov config: runtimeConfig.mac: {err}") from None
        return mac

    def vf_settings(self, mac: str | None) -> VfSettings:
        """The PF-side settings this config asks for (None: leave as is)."""
        vlan_given = self.vlan is not None
        return VfSettings(
            mac=mac,
            vlan=self.vlan,
            qos=(self.vlan_qos or 0) if vlan_given else None,
            vlan_proto=(self.vlan_proto or "802.1Q") if vlan_given else None,
            spoofchk=None if self.spoofchk is None else self.spoofchk == "on",
            trust=None if self.trust is None else self.trust == "on",
            link_state=self.link_state,
            min_tx_rate=self.min_tx_rate,
            max_tx_rate=self.max_tx_rate,
        )


def unicast_mac(value: str) -> str:
    """A MAC a netdev can take: six octets, unicast, not all zeros."""
    mac = normal_mac(value)
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast MAC address")
    if mac == "00:00:00:00:00:00":
        raise ValueError(f"{value!r} is the all-zero MAC address")
    return mac


#: The keys this plugin adds to the common ones, matched in any case.
_SRIOV_KEYS = (
    *(f.alias or name for name, f in SriovConf.model_fields.items() if name not in NetConf.model_fields),
    "runtimeConfig",
)
