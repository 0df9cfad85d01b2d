"""The config keys of a pod attached to a Linux bridge by a veth pair (`pycni.attach.veth`).

Pydantic only, so it stays cheap to import: the runner loads config models before anything
kernel-side. Used by the bridge and vxlan plugins, whose configs extend it.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from pycni.cni.config import NetConf


class VethAttachConf(NetConf):
    """Keys that shape a pod's veth attachment to a bridge (the reference bridge plugin's keys)."""

    is_gateway: bool = Field(False, alias="isGateway")
    is_default_gateway: bool = Field(False, alias="isDefaultGateway")
    force_address: bool = Field(False, alias="forceAddress")
    ip_masq: bool = Field(False, alias="ipMasq")
    ip_masq_backend: Literal["iptables", "nftables"] | None = Field(None, alias="ipMasqBackend")
    mtu: int | None = Field(None, ge=68, le=65535)
    hairpin_mode: bool = Field(False, alias="hairpinMode")
    promisc_mode: bool = Field(False, alias="promiscMode")
    port_isolation: bool = Field(False, alias="portIsolation")
    enabledad: bool = False
    macspoofchk: bool = False
    disable_container_interface: bool = Field(False, alias="disableContainerInterface")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.hairpin_mode and self.promisc_mode:
            raise ValueError("cannot set hairpin mode and promiscuous mode at the same time")
        if self.disable_container_interface and self.has_ipam:
            raise ValueError("cannot use IPAM when disableContainerInterface is set")
        if self.is_default_gateway:
            self.is_gateway = True
        return self
