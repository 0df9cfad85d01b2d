"""Applying an IPAM result to an interface (the reference's `ipam.ConfigureIface`)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from pycni.cni.errors import InternalError
from pycni.cni.ipaddr import IPAddress, IPNetwork
from pycni.net import addresses, links, netns, routes, sysctl

if TYPE_CHECKING:
    from pycni.cni.types import Result
    from pycni.net.nlsock import Rtnl


def family_gateways(result: Result) -> dict[int, IPAddress]:
    """The first gateway of each family: routes without `gw` go via it."""
    gateways: dict[int, IPAddress] = {}
    for cfg in result.ips:
        if cfg.gateway is not None:
            gateways.setdefault(cfg.gateway.version, cfg.gateway)
    return gateways


def configure_iface(
    pod: Rtnl, pod_netns: str, link: links.Link, result: Result, if_index: int | None = None
) -> None:
    """Add the result's addresses (those for interface `if_index`, or all) and routes, link up."""
    mine = [c for c in result.ips if if_index is None or c.interface in (None, if_index)]
    if any(c.address.version == 6 for c in mine):
        with netns.entered(pod_netns):
            sysctl.write_if_present(f"net/ipv6/conf/{link.name}/disable_ipv6", "0")
            sysctl.write_if_present("net/ipv6/conf/lo/disable_ipv6", "0")
    for cfg in mine:
        addresses.add_address(pod, link.index, cfg.address)
    links.set_up(pod, link)
    gateways = family_gateways(result)
    for route in result.routes:
        gw = route.gw if route.gw is not None else gateways.get(route.dst.version)
        routes.add_route(
            pod,
            route.dst,
            gw,
            link.index,
            priority=route.priority,
            table=route.table,
            scope=route.scope,
            mtu=route.mtu,
            advmss=route.advmss,
        )


def verify_iface(pod: Rtnl, link: links.Link, result: Result, if_index: int | None = None) -> None:
    """CHECK: every address and route of the result is present on `link`."""
    have = set(addresses.link_addresses(pod, link.index))
    for cfg in result.ips:
        if (if_index is None or cfg.interface in (None, if_index)) and cfg.address not in have:
            raise InternalError(f"address {cfg.address} is missing from {link.name}")
    gateways = family_gateways(result)
    for route in result.routes:
        gw = route.gw if route.gw is not None else gateways.get(route.dst.version)
        present = routes.link_routes(pod, addresses.family_of(route.dst.version), link.index)
        if (route.dst, gw) not in present and (route.dst, None) not in present:
            raise InternalError(f"route to {route.dst} via {gw or 'link'} is missing in the pod")


def zero_network(version: int) -> IPNetwork:
    return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
