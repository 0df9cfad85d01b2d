"""The newest result shape (spec 1.0.0 and 1.1.0): the only one plugin code builds or reads.

1.0.0 dropped `ips[].version`; 1.1.0 added interface `mtu`/`socketPath`/`pciID` and route
`mtu`/`advmss`/`priority`/`table`/`scope`. libcni uses one struct for both versions, so 1.0.0
output keeps the 1.1.0 attributes too; we do the same. An empty `dns` is left out (libcni >= 1.2).
Version history of the models:
  1.0.0: interfaces(name, mac, sandbox), ips(address, gateway, interface), routes(dst, gw), dns
  1.1.0: + interfaces[].mtu, socketPath, pciID; + routes[].mtu, advmss, priority, table, scope
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, StrictInt, StrictStr

from pycni.cni.types.common import DNS, CNIModel, IPAddress, IPInterface, Route

VERSIONS = ("1.0.0", "1.1.0")

__all__ = ["DNS", "IPConfig", "Interface", "Result", "Route"]


class Interface(CNIModel):
    """An interface the attachment created or configured, on the host or in the sandbox."""

    name: StrictStr = Field(description="Interface name.")
    mac: StrictStr | None = Field(None, description="Hardware address, as the plugin reported it.")
    mtu: StrictInt | None = Field(None, description="Interface MTU (spec 1.1.0).")
    sandbox: StrictStr | None = Field(
        None, description="Netns path of a container interface; unset on the host."
    )
    socket_path: StrictStr | None = Field(
        None, alias="socketPath", description="vhost-user/DPDK socket of the interface (spec 1.1.0)."
    )
    pci_id: StrictStr | None = Field(
        None, alias="pciID", description="PCI address of the device, e.g. '0000:04:00.5' (spec 1.1.0)."
    )


class IPConfig(CNIModel):
    """An address assigned by the attachment."""

    address: IPInterface = Field(description="Address and prefix length, e.g. '10.1.2.3/24'.")
    gateway: IPAddress | None = Field(None, description="Gateway of the subnet, if any.")
    interface: StrictInt | None = Field(
        None, description="Index into Result.interfaces; unset in IPAM (abbreviated) results."
    )


class Result(CNIModel):
    """The result of ADD, and the `prevResult` of chained plugins, in the newest shape."""

    OMIT_WHEN_EMPTY = frozenset({"interfaces", "ips", "routes"})

    cni_version: StrictStr = Field("1.1.0", alias="cniVersion")
    interfaces: list[Interface] = Field(default_factory=list)
    ips: list[IPConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    dns: DNS | None = Field(None, description="Resolver settings; None and empty both mean 'none'.")

    def _omit(self, key: str, value: Any) -> bool:
        return super()._omit(key, value) or (key == "dns" and self.dns is not None and self.dns.is_empty())
