"""network-status entries (NPWG v1.3 §4.1.2) from an attachment's result, in the reference's wire shape.

One entry per sandbox interface of the result; IPs go to the interface their `interface` index
names, IPs without one to the last entry (the NAD client since v1.7.3). IPs are written without
their prefix length and `dns` is always present, as the NPWG client library writes them; the
gateways of a `default-route` attachment go under `gateway`, the key that library reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.hw import devinfo

if TYPE_CHECKING:
    from pycni.cni.types import Result
    from pycni.hw.devinfo import DeviceInfo
    from pycni.meta_multus.plan import Plan


def of_plan(plan: Plan, results: Sequence[Result]) -> list[dict[str, Any]]:
    """The pod's network-status: every attachment's entries, in the plan's order.

    ADD writes it from the delegates' results; DEL computes it again from the cached results
    (`teardown.forget_status`) to tell its own status file from a newer sandbox's. The same
    function on the same results: the two agree byte for byte.
    """
    return [
        entry
        for att, result in zip(plan.attachments, results, strict=True)
        for entry in entries(
            result,
            att.network,
            att.ifname,
            default=att.default,
            gateways=att.gateways,
            device_info=devinfo.read(Path(att.device_info_file)) if att.device_info_file else None,
        )
    ]


def entries(
    result: Result,
    network: str,
    ifname: str,
    *,
    default: bool,
    gateways: list[str],
    device_info: DeviceInfo | None,
) -> list[dict[str, Any]]:
    sandboxed = [(i, iface) for i, iface in enumerate(result.interfaces) if iface.sandbox]
    if not sandboxed:  # an IPAM-only or device-only result: the interface is the one we named
        return [
            _entry(
                network,
                ifname,
                None,
                [str(ip.address.ip) for ip in result.ips],
                default,
                gateways,
                result,
                device_info,
            )
        ]
    out = []
    for position, (index, iface) in enumerate(sandboxed):
        last = position == len(sandboxed) - 1
        ips = [
            str(ip.address.ip)
            for ip in result.ips
            if ip.interface == index or (ip.interface is None and last)
        ]
        is_default = default and index == _default_index(result, sandboxed)
        out.append(_entry(network, iface.name, iface, ips, is_default, gateways, result, device_info))
    return out


def _default_index(result: Result, sandboxed: list[tuple[int, Any]]) -> int:
    """The cluster network's default interface: the one with a gateway, else the first in the pod."""
    with_gateway = {ip.interface for ip in result.ips if ip.gateway is not None}
    return next((i for i, _ in sandboxed if i in with_gateway), sandboxed[0][0])


def _entry(
    network: str,
    ifname: str,
    iface: Any,
    ips: list[str],
    default: bool,
    gateways: list[str],
    result: Result,
    device_info: DeviceInfo | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": network, "interface": ifname}
    if ips:
        entry["ips"] = ips
    if iface is not None and iface.mac:
        entry["mac"] = iface.mac
    if iface is not None and iface.mtu:
        entry["mtu"] = iface.mtu
    entry["default"] = default
    dns = result.dns.model_dump(mode="json", exclude_none=True) if result.dns else {}
    entry["dns"] = {k: v for k, v in dns.items() if k in ("nameservers", "domain", "search") and v}
    if gateways:
        entry["gateway"] = gateways
    if device_info:
        entry["device-info"] = device_info
    return entry


def describe(entry: dict[str, Any]) -> str:
    """The AddedInterface event text, as the reference words it: `Add net1 [10.1.1.2/24] from ns/nad`."""
    return f"Add {entry.get('interface', '')} [{','.join(entry.get('ips', []))}] from {entry['name']}"
