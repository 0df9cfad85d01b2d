"""The host-device config: the reference plugin's keys, same meaning, one selector only.

`device`, `hwaddr`, `kernelpath`, `pciBusID` and `runtimeConfig.deviceID` each name the device;
more than one (other than `pciBusID` and `deviceID` naming the same address) is a config error.
A config with none is valid for DEL, STATUS and GC (they find the device through the state
kept at ADD), so "none" is reported by `require_selector`, which ADD calls.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from pycni.cni.config import NetConf, RuntimeConfig
from pycni.cni.errors import InvalidConfig
from pycni.hw.sysfs import is_pci_address

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
KERNEL_PATH_PREFIX = "/sys/devices/"
SELECTOR_KEYS = ("device", "hwaddr", "kernelpath", "pciBusID", "runtimeConfig.deviceID")


class HostDeviceRuntimeConfig(RuntimeConfig):
    """`runtimeConfig` with the NPWG `CNIDeviceInfoFile` capability (the key is case-sensitive)."""

    device_info_file: str | None = Field(
        None, alias="CNIDeviceInfoFile", description="Where to write the NPWG device-info for a PCI device."
    )


class HostDeviceConf(NetConf):
    device: str | None = Field(
        None, min_length=1, max_length=15, description="Netdev name in the node netns."
    )
    hwaddr: str | None = Field(None, description="MAC address of the netdev.")
    kernelpath: str | None = Field(None, description="sysfs path of the device, '/sys/devices/...'.")
    pci_bus_id: str | None = Field(None, alias="pciBusID", description="PCI address, 'dddd:bb:dd.f'.")
    runtime_config: HostDeviceRuntimeConfig = Field(
        default_factory=HostDeviceRuntimeConfig, alias="runtimeConfig"
    )

    @field_validator("device")
    @classmethod
    def _device_name(cls, value: str | None) -> str | None:
        """An interface name by the kernel's rules: never a path (`../x`, `a/b`, `..`)."""
        if value is not None:
            from pycni.cni.errors import InvalidEnvironment
            from pycni.cni.runtime import validate_ifname

            try:
                validate_ifname(value)
            except InvalidEnvironment as err:
                reason = err.msg.removeprefix(f"CNI_IFNAME {value!r} ").removeprefix("CNI_IFNAME ")
                raise ValueError(f"{value!r} is not a valid interface name: {reason}") from None
        return value

    @field_validator("hwaddr")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        if value is None:
            return None
        mac = value.lower().replace("-", ":")
        if not _MAC.fullmatch(mac):
            raise ValueError(f"{value!r} is not a MAC address such as '0a:58:0a:01:02:03'")
        return mac

    @field_validator("kernelpath")
    @classmethod
    def _kernel_path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(KERNEL_PATH_PREFIX) or "/../" in value + "/"):
            raise ValueError(f"{value!r} must be an absolute path under {KERNEL_PATH_PREFIX}")
        return value

    @field_validator("pci_bus_id")
    @classmethod
    def _bdf(cls, value: str | None) -> str | None:
        if value is not None and not is_pci_address(value):
            raise ValueError(f"{value!r} is not a PCI address such as '0000:03:00.1'")
        return value.lower() if value else value

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        given = self.selectors()
        if len(given) > 1:
            raise ValueError(f"specify only one of {', '.join(SELECTOR_KEYS)}; got {', '.join(given)}")
        return self

    def selectors(self) -> list[str]:
        """The selector keys this config sets; `pciBusID` equal to `deviceID` counts once."""
        device_id = self.runtime_config.device_id
        given = [
            k
            for k, v in (
                ("device", self.device),
                ("hwaddr", self.hwaddr),
                ("kernelpath", self.kernelpath),
                ("pciBusID", self.pci_bus_id),
            )
            if v
        ]
        if device_id and device_id.lower() != (self.pci_bus_id or ""):
            given.append("runtimeConfig.deviceID")
        return given

    @property
    def device_id(self) -> str | None:
        """The PCI or auxiliary id: `runtimeConfig.deviceID` (the device plugin's), else `pciBusID`."""
        return self.runtime_config.device_id or self.pci_bus_id

    def require_selector(self) -> None:
        if not self.selectors() and not self.device_id:
            raise InvalidConfig(f"invalid host-device config: specify one of {', '.join(SELECTOR_KEYS)}")
