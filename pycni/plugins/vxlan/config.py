"""The vxlan plugin's config: the overlay keys plus the bridge plugin's pod-side keys.

Pydantic only, so it stays cheap to import. Everything that can be judged without the
kernel (ranges, address kinds, one flooding mode, one address family) is judged here, so a
bad config is code 7 naming the key before any device is touched.
"""

from __future__ import annotations

import ipaddress
from typing import Self

from pydantic import Field, field_validator, model_validator

from pycni.attach.veth_conf import VethAttachConf
from pycni.cni.ipaddr import IPAddress

VNI_MAX = 2**24 - 1
DEFAULT_PORT = 4789  # IANA; flannel and Cilium default to the pre-IANA 8472


def _address(value: object, key: str) -> IPAddress:
    """A strictly parsed address: `ipaddress` rejects "1.2.3", leading zeros and prefixes."""
    if not isinstance(value, str):
        raise ValueError(f"{key} must be an IP address string, got {value!r}")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None


class VxlanConf(VethAttachConf):
    """One VXLAN segment (VNI) per network; pods join it through a per-VNI bridge."""

    vni: int = Field(ge=1, le=VNI_MAX, description="VXLAN network identifier (24 bits).")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="UDP destination port of the tunnel.")
    underlay: str | None = Field(
        None,
        min_length=1,
        max_length=15,
        description="Interface carrying the tunnel; derived from routes if unset.",
    )
    local_ip: IPAddress | None = Field(None, alias="localIP", description="Source address of tunnel packets.")
    remotes: list[IPAddress] | None = Field(
        None,
        description="Other nodes' VTEP addresses: head-end replication. This node's own address is skipped.",
    )
    group: IPAddress | None = Field(None, description="Multicast group for flooding, instead of `remotes`.")
    learning: bool = Field(True, description="Learn remote MACs from received frames.")
    disable_tx_checksum_offload: bool = Field(
        False,
        alias="disableTxChecksumOffload",
        description="Turn off tx-checksum-ip-generic on the VXLAN device.",
    )
    bridge: str = Field(
        "", max_length=15, description="Bridge joining pods and the VXLAN device; default vxbr<vni>."
    )

    @field_validator("local_ip", "group", mode="before")
    @classmethod
    def _one_address(cls, value: object) -> object:
        return None if value is None else _address(value, "address")

    @field_validator("remotes", mode="before")
    @classmethod
    def _remote_addresses(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list):
            raise ValueError("remotes must be a list of IP addresses")
        return [_address(v, "each remote") for v in value]

    @field_validator("remotes")
    @classmethod
    def _unicast_remotes(cls, value: list[IPAddress] | None) -> list[IPAddress] | None:
        for addr in value or []:
            if addr.is_multicast or addr.is_unspecified or addr.is_loopback:
                raise ValueError(f"{addr} is not a unicast VTEP address (use group for multicast)")
        if value is not None and len(set(value)) != len(value):
            raise ValueError("remotes lists an address twice")
        return value

    @field_validator("group")
    @classmethod
    def _multicast_group(cls, value: IPAddress | None) -> IPAddress | None:
        if value is not None and not value.is_multicast:
            raise ValueError(f"{value} is not a multicast address")
        return value

    @field_validator("local_ip")
    @classmethod
    def _unicast_local(cls, value: IPAddress | None) -> IPAddress | None:
        if value is not None and (value.is_multicast or value.is_unspecified):
            raise ValueError(f"{value} is not a unicast address")
        return value

    @model_validator(mode="after")
    def _flooding_and_family(self) -> Self:
        if (self.remotes is None) == (self.group is None):
            raise ValueError("set exactly one of remotes (head-end replication) or group (multicast)")
        families = {a.version for a in self.tunnel_addresses}
        if len(families) > 1:
            raise ValueError("localIP, remotes and group must all be IPv4 or all IPv6")
        if not self.bridge:
            self.bridge = f"vxbr{self.vni}"
        return self

    @property
    def tunnel_addresses(self) -> list[IPAddress]:
        """Every underlay address the config names (they share one family)."""
        found: list[IPAddress] = list(self.remotes or [])
        found += [a for a in (self.group, self.local_ip) if a is not None]
        return found

    @property
    def ip_version(self) -> int | None:
        """4 or 6 when the config pins the underlay family; None leaves it to the underlay."""
        addrs = self.tunnel_addresses
        return addrs[0].version if addrs else None

    @property
    def device_name(self) -> str:
        """Our name for this VNI's VXLAN device (VNIs up to 8 digits: at most 10 chars)."""
        return f"vx{self.vni}"
