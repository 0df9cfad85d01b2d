"""The bridge plugin's config: every key of the reference plugin, same meaning and default."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from pycni.cni.config import Model, NetConf


class VlanTrunk(Model):
    """One `vlanTrunk` entry: a single `id`, or a `minID`..`maxID` range."""

    id: int | None = Field(None, ge=1, le=4094)
    min_id: int | None = Field(None, alias="minID", ge=1, le=4094)
    max_id: int | None = Field(None, alias="maxID", ge=1, le=4094)

    @model_validator(mode="after")
    def _id_or_range(self) -> Self:
        if self.id is None and (self.min_id is None or self.max_id is None):
            raise ValueError("a vlanTrunk entry needs id, or both minID and maxID")
        if self.min_id is not None and self.max_id is not None and self.min_id > self.max_id:
            raise ValueError(f"minID {self.min_id} is greater than maxID {self.max_id}")
        return self

    def vids(self) -> list[int]:
        if self.id is not None:
            return [self.id]
        assert self.min_id is not None and self.max_id is not None
        return list(range(self.min_id, self.max_id + 1))


class PodSideConf(NetConf):
    """Keys that shape the pod's attachment to a bridge; shared with the vxlan plugin."""

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


class BridgeConf(PodSideConf):
    bridge: str = Field("cni0", min_length=1, max_length=15)
    vlan: int = Field(0, ge=0, le=4094)
    vlan_trunk: list[VlanTrunk] = Field(default_factory=list, alias="vlanTrunk")
    preserve_default_vlan: bool = Field(False, alias="preserveDefaultVlan")

    @property
    def uses_vlans(self) -> bool:
        return self.vlan != 0 or bool(self.vlan_trunk)
