"""The bridge plugin's config: every key of the reference plugin, same meaning and default.

The pod-side keys (gateway, masquerade, port modes, MTU) are shared with vxlan and live in
`pycni.attach.veth_conf`; the bridge name and VLAN keys are the bridge plugin's own.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from pycni.attach.veth_conf import VethAttachConf
from pycni.cni.config import Model


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


class BridgeConf(VethAttachConf):
    bridge: str = Field("cni0", min_length=1, max_length=15)
    vlan: int = Field(0, ge=0, le=4094)
    vlan_trunk: list[VlanTrunk] = Field(default_factory=list, alias="vlanTrunk")
    preserve_default_vlan: bool = Field(False, alias="preserveDefaultVlan")

    @property
    def uses_vlans(self) -> bool:
        return self.vlan != 0 or bool(self.vlan_trunk)
