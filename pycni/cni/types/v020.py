"""Result shape of spec 0.1.0 and 0.2.0: at most one `ip4` and one `ip6`, routes nested per family.

There are no interfaces and no interface indexes. `dns` is always written (libcni prints
`"dns": {}` for these versions). Conversion from and to the 0.3+ shapes lives in `convert`.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, StrictStr, model_validator

from pycni.cni.types.common import DNS, CNIModel, IPAddress, IPInterface, IPNetwork

VERSIONS = ("0.1.0", "0.2.0")


class Route(CNIModel):
    """A 0.2.0 route: destination and optional next hop, nothing more."""

    dst: IPNetwork = Field(description="Destination in CIDR notation.")
    gw: IPAddress | None = Field(None, description="Next hop.")


class IPConfig(CNIModel):
    """The one address of a family, with its gateway and the routes of that family."""

    OMIT_WHEN_EMPTY = frozenset({"routes"})

    ip: IPInterface = Field(description="Address and prefix length, e.g. '10.1.2.3/24'.")
    gateway: IPAddress | None = Field(None, description="Gateway of the subnet, if any.")
    routes: list[Route] = Field(default_factory=list, description="Routes of this address family.")


class Result(CNIModel):
    """A whole 0.1.0/0.2.0 result."""

    cni_version: StrictStr = Field("0.2.0", alias="cniVersion")
    ip4: IPConfig | None = Field(None, description="The IPv4 configuration.")
    ip6: IPConfig | None = Field(None, description="The IPv6 configuration.")
    dns: DNS = Field(default_factory=DNS)

    @model_validator(mode="after")
    def _families_match(self) -> Self:
        """`ip4` must hold an IPv4 address and `ip6` an IPv6 one; a swap would silently misroute."""
        for key, family, cfg in (("ip4", 4, self.ip4), ("ip6", 6, self.ip6)):
            if cfg is not None and cfg.ip.version != family:
                raise ValueError(f"{key}.ip must be an IPv{family} address, got {cfg.ip}")
        return self
