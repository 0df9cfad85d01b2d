"""Result shape of spec 0.3.0, 0.3.1 and 0.4.0: `interfaces`, `ips` carrying `version`, top-level routes.

The three versions share one shape (spec 0.3.0's text said `ip`, but libcni always read and wrote
`ips`, and so do we). `ips[].version` is derived from the address on output and ignored on input,
so it can never disagree with the address. `dns` is always written, as libcni does.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictInt, StrictStr, model_validator

from pycni.cni.types.common import DNS, CNIModel, IPAddress, IPInterface, Route

VERSIONS = ("0.3.0", "0.3.1", "0.4.0")


class Interface(CNIModel):
    """An interface the attachment created or configured (no 1.1.0 attributes here)."""

    name: StrictStr = Field(description="Interface name.")
    mac: StrictStr | None = Field(None, description="Hardware address, as the plugin reported it.")
    sandbox: StrictStr | None = Field(
        None, description="Netns path of a container interface; unset on the host."
    )


class IPConfig(CNIModel):
    """An address, with `version` "4"/"6" written next to it."""

    COMPUTED_KEYS = frozenset({"version"})

    address: IPInterface = Field(description="Address and prefix length, e.g. '10.1.2.3/24'.")
    gateway: IPAddress | None = Field(None, description="Gateway of the subnet, if any.")
    interface: StrictInt | None = Field(None, description="Index into the result's interfaces.")

    @model_validator(mode="before")
    @classmethod
    def _drop_version(cls, data: Any) -> Any:
        """The input `version` is redundant with the address; libcni never checks it either."""
        if isinstance(data, dict) and "version" in data:
            return {k: v for k, v in data.items() if k != "version"}
        return data

    def _computed(self) -> dict[str, Any]:
        return {"version": str(self.address.version)}


class Result(CNIModel):
    """A whole 0.3.x/0.4.0 result."""

    OMIT_WHEN_EMPTY = frozenset({"interfaces", "ips", "routes"})

    cni_version: StrictStr = Field("0.4.0", alias="cniVersion")
    interfaces: list[Interface] = Field(default_factory=list)
    ips: list[IPConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    dns: DNS = Field(default_factory=DNS)
