"""Running one planned attachment: its network list through libcni's list semantics, plus what
multus adds around it (the device-info copy, the default-route edits).

Delegates of our own types run in-process, others are exec'd from `binDir` (put first on
CNI_PATH); results are cached in libcni's format under `cniDir`, keyed by the network name,
the container ID and the attachment's interface.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.cni import version
from pycni.cni.errors import CNIError, InvalidConfig
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import Result, Route, parse_result
from pycni.hw import devinfo
from pycni.libcni import netlist
from pycni.libcni.cache import ResultCache
from pycni.libcni.conflist import NetConfList

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.meta_multus.config import MultusConf
    from pycni.meta_multus.plan import Plan, PlannedAttachment

log = logging.getLogger(__name__)

ZERO = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


def delegate_args(plan: Plan, att: PlannedAttachment) -> tuple[tuple[str, str], ...]:
    """CNI_ARGS for a delegate: the runtime's plus `IgnoreUnknown`; a secondary network gets its
    selection's `mac`/`ips` as the reference's deprecated MAC=/IP= keys instead of the runtime's."""
    args = [
        (k, v) for k, v in plan.cni_args if k != "IgnoreUnknown" and (att.default or k not in ("MAC", "IP"))
    ]
    args.insert(0, ("IgnoreUnknown", "true"))
    if not att.default and att.capability_args.get("mac"):
        args.append(("MAC", str(att.capability_args["mac"])))
    if not att.default and att.capability_args.get("ips"):
        args.append(("IP", ",".join(att.capability_args["ips"])))
    return tuple(args)


def network_call(
    conf: MultusConf, plan: Plan, att: PlannedAttachment, rt: RuntimeArgs
) -> netlist.NetworkCall:
    path = tuple(dict.fromkeys((conf.bin_dir, *rt.path)))
    return netlist.NetworkCall(
        netlist=NetConfList.from_json(att.conflist),
        rt=RuntimeArgs(
            rt.command,
            plan.container_id,
            rt.netns or plan.netns,
            att.ifname,
            delegate_args(plan, att),
            path,
            rt.env,
        ),
        cache=ResultCache(conf.cni_dir),
        capability_args=att.capability_args,
        config=json.dumps(att.conflist).encode(),
    )


def add(conf: MultusConf, plan: Plan, att: PlannedAttachment, rt: RuntimeArgs, ctx: Context) -> Result:
    """ADD the attachment; the result with its default routes as the plan wants them."""
    _copy_device_info(conf, att)
    call = network_call(conf, plan, att, rt.with_command(Command.ADD))
    log.debug("ADD %s: network %s on %s runs %s", plan.container_id, att.network, att.ifname, call.config)
    raw = netlist.add(call, ctx.delegate)
    result = parse_result(raw, call.version) if raw is not None else Result()
    if att.filter_families or att.gateways:
        result = _apply_default_routes(call, att, result)
    log.info(
        "ADD %s: network %s on %s: %s",
        plan.container_id,
        att.network,
        att.ifname,
        ", ".join(str(ip.address) for ip in result.ips) or "no addresses",
    )
    log.debug("ADD %s: network %s on %s result %s", plan.container_id, att.network, att.ifname, raw)
    return result


def delete(conf: MultusConf, plan: Plan, att: PlannedAttachment, rt: RuntimeArgs, ctx: Context) -> None:
    netlist.delete(network_call(conf, plan, att, rt.with_command(Command.DEL)), ctx.delegate)
    devinfo.remove(att.device_info_file)
    log.info("DEL %s: network %s on %s removed", plan.container_id, att.network, att.ifname)


def check(conf: MultusConf, plan: Plan, att: PlannedAttachment, rt: RuntimeArgs, ctx: Context) -> None:
    """CHECK the attachment; a network below 0.4.0 has no CHECK and passes (libcni would refuse)."""
    call = network_call(conf, plan, att, rt.with_command(Command.CHECK))
    if version.at_least(call.version, "0.4.0"):
        netlist.check(call, ctx.delegate)


def cached_result(conf: MultusConf, plan: Plan, att: PlannedAttachment) -> Result | None:
    """The attachment's result as its ADD cached it (the default-route edits included); None
    when nothing is cached (its ADD never completed, or its DEL did) or the entry is unreadable.

    Read straight from the cache, without the network call DEL builds next: a cached result
    always carries its `cniVersion` (libcni's render writes it), so the list's own version is
    only a fallback."""
    cached = ResultCache(conf.cni_dir).load(att.network_name, plan.container_id, att.ifname)
    if cached is None:
        return None
    if cached.result is None:  # a network whose plugins returned nothing: ADD reported it as empty
        return Result()
    try:
        return parse_result(cached.result, str(att.conflist.get("cniVersion") or ""))
    except CNIError as err:
        log.warning("the cached result of %s on %s is unreadable: %s", att.network, att.ifname, err.msg)
        return None


def _copy_device_info(conf: MultusConf, att: PlannedAttachment) -> None:
    """The device plugin's file for the device, copied to the path handed to the delegate."""
    if not (att.device_info_file and att.resource_name) or att.claimed is not None:
        return  # no device plugin's file: a claim's device is the DRA driver's
    source = devinfo.dp_path(conf.device_info_dir / "dp", att.resource_name, att.device_id)
    if not devinfo.copy(source, Path(att.device_info_file)):
        log.info("no device-info file %s for %s: the delegate may write its own", source, att.device_id)


def _apply_default_routes(call: netlist.NetworkCall, att: PlannedAttachment, result: Result) -> Result:
    """Remove the default routes of the families another attachment owns; set the requested gateways.

    Done in the pod's netns and in the result (the cached copy too, so CHECK agrees)."""
    from pycni.net import addresses, links, netns, routes

    gateways = [ipaddress.ip_address(g) for g in att.gateways]
    with netns.rtnl(call.rt.netns) as pod:
        for family in att.filter_families:
            routes.delete_default_routes(pod, att.ifname, addresses.family_of(family))
        for gateway in gateways:
            if links.find_link(pod, att.ifname) is None:
                raise InvalidConfig(
                    f"default-route {gateway} on {att.ifname}: the network made no interface {att.ifname}"
                )
            routes.set_default_route(pod, att.ifname, gateway)
    dropped = set(att.filter_families) | {g.version for g in gateways}
    kept = [r for r in result.routes if not (r.dst.prefixlen == 0 and r.dst.version in dropped)]
    added = [Route(dst=ZERO[g.version], gw=g) for g in gateways]
    result = result.model_copy(update={"routes": kept + added})
    _recache(call, result)
    return result


def _recache(call: netlist.NetworkCall, result: Result) -> None:
    cached = call.cached()
    if cached is not None:
        call.cache.save(replace(cached, result=netlist.render(result, call.version)), call.config)
