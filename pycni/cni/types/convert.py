"""Moving a result between spec versions, one neighbour at a time, through one explicit table.

`CONVERTERS` lists every (from, to) step; a conversion walks the steps along
`SUPPORTED_VERSIONS`, so 1.1.0 -> 0.2.0 passes 1.0.0, 0.4.0, 0.3.1 and 0.3.0 (libcni likewise
reaches 0.2.0 through 0.4.0). Each step knows only its two shapes. What a step does to data the
target cannot carry mirrors libcni `pkg/types/{040,100}`; see docs/result-versions.md.

Unknown keys ride along with their object (`common.carry`) unless the object itself disappears
(interfaces, and all but the first IP of a family, in 0.2.0), or the target gives that key a
meaning of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pycni.cni.errors import IncompatibleVersion
from pycni.cni.types import v020, v040, v100
from pycni.cni.types.common import DNS, Route, carry
from pycni.cni.version import SUPPORTED_VERSIONS

AnyResult = v020.Result | v040.Result | v100.Result
Converter = Callable[[AnyResult, str], AnyResult]
R = TypeVar("R", v020.Result, v040.Result, v100.Result)


def _expect(result: AnyResult, shape: type[R]) -> R:
    """Narrow a step's input; a mismatch is a bug in the table, never bad input."""
    if not isinstance(result, shape):
        raise TypeError(f"converter for {shape.__module__} got a {type(result).__module__} result")
    return result


def _relabel(result: AnyResult, to: str) -> AnyResult:
    """Between versions of the same shape only `cniVersion` changes."""
    return result.model_copy(update={"cni_version": to})


def _v020_to_v040(result: AnyResult, to: str) -> AnyResult:
    """ip4/ip6 become `ips` entries (IPv4 first) and their routes become top-level routes."""
    res = _expect(result, v020.Result)
    ips: list[v040.IPConfig] = []
    routes: list[Route] = []
    for cfg in (res.ip4, res.ip6):
        if cfg is None:
            continue
        ips.append(v040.IPConfig(address=cfg.ip, gateway=cfg.gateway, **carry(cfg, v040.IPConfig)))
        routes += [Route(dst=r.dst, gw=r.gw, **carry(r, Route)) for r in cfg.routes]
    return v040.Result(
        cni_version=to, ips=ips, routes=routes, dns=res.dns.model_copy(deep=True), **carry(res, v040.Result)
    )


def _v040_to_v020(result: AnyResult, to: str) -> AnyResult:
    """Keep the FIRST address of each family; a route goes under the family of its dst, as
    dst/gw only, and is dropped when that family has no address. Interfaces are lost."""
    res = _expect(result, v040.Result)
    first: dict[int, v040.IPConfig] = {}
    for ip in res.ips:
        first.setdefault(ip.address.version, ip)
    if not first:
        raise IncompatibleVersion(
            f"cannot convert result to CNI {to}: no valid IP addresses; 0.1.0/0.2.0 results can only "
            "describe an attachment with an IPv4 or IPv6 address, so use cniVersion 0.3.0 or later "
            "for this network"
        )
    configs = {family: _v020_ipconfig(ip, res.routes) for family, ip in first.items()}
    return v020.Result(
        cni_version=to,
        ip4=configs.get(4),
        ip6=configs.get(6),
        dns=res.dns.model_copy(deep=True),
        **carry(res, v020.Result),
    )


def _v020_ipconfig(ip: v040.IPConfig, routes: list[Route]) -> v020.IPConfig:
    """`ip` as an ip4/ip6 object holding the routes of its family, cut to dst/gw (libcni)."""
    family = ip.address.version
    own = [v020.Route(dst=r.dst, gw=r.gw, **carry(r, v020.Route)) for r in routes if r.dst.version == family]
    return v020.IPConfig(ip=ip.address, gateway=ip.gateway, routes=own, **carry(ip, v020.IPConfig))


def _v040_to_v100(result: AnyResult, to: str) -> AnyResult:
    """`version` goes away; interfaces, indexes, routes and DNS carry over unchanged."""
    res = _expect(result, v040.Result)
    return v100.Result(
        cni_version=to,
        interfaces=[
            v100.Interface(name=i.name, mac=i.mac, sandbox=i.sandbox, **carry(i, v100.Interface))
            for i in res.interfaces
        ],
        ips=[
            v100.IPConfig(
                address=ip.address, gateway=ip.gateway, interface=ip.interface, **carry(ip, v100.IPConfig)
            )
            for ip in res.ips
        ],
        routes=[r.model_copy(deep=True) for r in res.routes],
        dns=None if res.dns.is_empty() else res.dns.model_copy(deep=True),
        **carry(res, v100.Result),
    )


def _v100_to_v040(result: AnyResult, to: str) -> AnyResult:
    """Interfaces lose mtu/socketPath/pciID (libcni convertInterfaceTo040); routes keep all
    their attributes, because libcni shares one route type between these versions."""
    res = _expect(result, v100.Result)
    return v040.Result(
        cni_version=to,
        interfaces=[
            v040.Interface(name=i.name, mac=i.mac, sandbox=i.sandbox, **carry(i, v040.Interface))
            for i in res.interfaces
        ],
        ips=[
            v040.IPConfig(
                address=ip.address, gateway=ip.gateway, interface=ip.interface, **carry(ip, v040.IPConfig)
            )
            for ip in res.ips
        ],
        routes=[r.model_copy(deep=True) for r in res.routes],
        dns=res.dns.model_copy(deep=True) if res.dns is not None else DNS(),
        **carry(res, v040.Result),
    )


#: Every conversion step, between neighbours in SUPPORTED_VERSIONS, in both directions.
CONVERTERS: dict[tuple[str, str], Converter] = {
    ("0.1.0", "0.2.0"): _relabel,
    ("0.2.0", "0.1.0"): _relabel,
    ("0.2.0", "0.3.0"): _v020_to_v040,
    ("0.3.0", "0.2.0"): _v040_to_v020,
    ("0.3.0", "0.3.1"): _relabel,
    ("0.3.1", "0.3.0"): _relabel,
    ("0.3.1", "0.4.0"): _relabel,
    ("0.4.0", "0.3.1"): _relabel,
    ("0.4.0", "1.0.0"): _v040_to_v100,
    ("1.0.0", "0.4.0"): _v100_to_v040,
    ("1.0.0", "1.1.0"): _relabel,
    ("1.1.0", "1.0.0"): _relabel,
}


def steps(src: str, dst: str) -> list[tuple[str, str]]:
    """The (from, to) steps from `src` to `dst`, both supported versions."""
    i, j = SUPPORTED_VERSIONS.index(src), SUPPORTED_VERSIONS.index(dst)
    way = 1 if j >= i else -1
    return [(SUPPORTED_VERSIONS[k], SUPPORTED_VERSIONS[k + way]) for k in range(i, j, way)]


def convert(result: AnyResult, src: str, dst: str) -> AnyResult:
    """`result`, in `src`'s shape, re-expressed in `dst`'s shape with `cniVersion` = `dst`."""
    for step in steps(src, dst):
        result = CONVERTERS[step](result, step[1])
    return result
