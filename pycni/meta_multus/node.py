"""The node-wide verbs: STATUS and GC of every network the node uses, not only the cluster network.

"Every network" is the cluster and default networks, the networks of the plans on disk, and
the networks of the cached results (whose configs the cache keeps), each once. GC first DELs the
pods the runtime no longer lists (their plans, or their cached results when the plan is lost),
then lets each network's plugins collect with the attachments of the pods that remain.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pycni.cni import version
from pycni.cni.errors import CNIError, PluginNotAvailable
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.libcni import netlist
from pycni.libcni.cache import ResultCache
from pycni.meta_multus import attach, guards, pods
from pycni.meta_multus.allotment import DeviceAllotment
from pycni.meta_multus.call import MultusCall
from pycni.meta_multus.plan import CorruptPlan, Plan, PlannedAttachment, PlanStore
from pycni.meta_multus.resolve import Resolver, info_dir
from pycni.meta_multus.teardown import cached_network, from_cache, teardown

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.meta_multus.config import MultusConf

log = logging.getLogger(__name__)


def networks(conf: MultusConf, rt: RuntimeArgs) -> list[PlannedAttachment]:
    """Every network the node uses, once each, the cluster network first and marked `default`."""
    resolver = Resolver(conf, rt, pods.open_source(conf, rt), None, DeviceAllotment(dict))
    found: dict[str, PlannedAttachment] = {}
    for index, net in enumerate([resolver.cluster_network(), *resolver.default_networks()]):
        found.setdefault(
            str(net.conflist["name"]),
            PlannedAttachment(network=net.status_name, ifname="", default=index == 0, conflist=net.conflist),
        )
    for plan in _plans(PlanStore(conf.cni_dir, info_dir(conf))):
        for att in plan.attachments:
            found.setdefault(att.network_name, att.model_copy(update={"default": False}))
    for entry in ResultCache(conf.cni_dir).all_attachments():
        if entry.network not in found and (listed := cached_network(entry.config)) is not None:
            found[entry.network] = PlannedAttachment(network=entry.network, ifname="", conflist=listed)
    return list(found.values())


def status(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    """The cluster network's failure is the node's answer; others' are reported as code 50."""
    failures: list[str] = []
    for att in networks(conf, rt):
        try:
            call = attach.network_call(conf, _node_plan(rt), att, rt)
            if version.at_least(call.version, "1.1.0"):  # libcni: STATUS is a 1.1.0 verb
                netlist.status(call, ctx.delegate)
        except CNIError as err:
            if att.default:
                raise
            failures.append(f"network {att.network}: {err.msg}")
    if failures:
        raise PluginNotAvailable("; ".join(failures))


def collect(conf: MultusConf, rt: RuntimeArgs, ctx: Context, valid_ids: set[str]) -> list[str]:
    """GC: DEL the pods not in `valid_ids`, then GC every network; the errors met."""
    store = PlanStore(conf.cni_dir, info_dir(conf))
    errors: list[str] = []
    kept: list[Plan] = []
    for container_id in store.container_ids():
        with guards.pod_lock(ctx, container_id):
            try:
                plan = store.load(container_id)
            except CorruptPlan as err:
                if container_id not in valid_ids:
                    log.warning("removing a damaged plan of a gone container: %s", err)
                    store.remove(container_id)
                continue
            if plan is None:
                continue
            if container_id in valid_ids:
                kept.append(plan)
            else:
                call = MultusCall(conf, rt.with_command(Command.DEL), ctx, store)
                errors += [e.msg for e in teardown(call, plan, records=True)]
    errors += _del_cached_orphans(conf, rt, ctx, valid_ids)
    errors += _gc_networks(conf, rt, ctx, kept, valid_ids)
    return errors


def _gc_networks(
    conf: MultusConf, rt: RuntimeArgs, ctx: Context, kept: list[Plan], valid_ids: set[str]
) -> list[str]:
    """GC each network with the attachments of the valid pods (from their plans and the cache)."""
    valid: dict[str, list[dict[str, str]]] = {}
    for plan in kept:
        for att in plan.attachments:
            valid.setdefault(att.network_name, []).append(
                {"containerID": plan.container_id, "ifname": att.ifname}
            )
    for entry in ResultCache(conf.cni_dir).all_attachments():
        pair = {"containerID": entry.container_id, "ifname": entry.ifname}
        if entry.container_id in valid_ids and pair not in valid.setdefault(entry.network, []):
            valid[entry.network].append(pair)
    errors: list[str] = []
    try:
        attachments = networks(conf, rt)
    except CNIError as err:
        return [f"cannot list the node's networks: {err.msg}"]
    for att in attachments:
        try:
            call = attach.network_call(conf, _node_plan(rt), att, rt)
            netlist.gc(call, ctx.delegate, valid.get(att.network_name, []))
        except CNIError as err:
            errors.append(f"network {att.network}: {err.msg}")
    return errors


def _del_cached_orphans(conf: MultusConf, rt: RuntimeArgs, ctx: Context, valid_ids: set[str]) -> list[str]:
    """A cached result of a gone pod without a plan: it carries everything its DEL needs."""
    store = PlanStore(conf.cni_dir, info_dir(conf))
    cache = ResultCache(conf.cni_dir)
    errors: list[str] = []
    for entry in cache.all_attachments():
        if entry.container_id in valid_ids or store.exists(entry.container_id):
            continue
        att = from_cache(entry, rt, info_dir(conf))
        if att is None:
            cache.remove(entry.network, entry.container_id, entry.ifname)
            continue
        plan = Plan(
            container_id=entry.container_id, netns=entry.netns, cni_args=entry.cni_args, attachments=[att]
        )
        try:
            attach.delete(conf, plan, att, rt.with_command(Command.DEL), ctx)
        except CNIError as err:
            errors.append(f"network {entry.network} of gone container {entry.container_id}: {err.msg}")
    return errors


def _plans(store: PlanStore) -> list[Plan]:
    plans = []
    for container_id in store.container_ids():
        try:
            plan = store.load(container_id)
        except CorruptPlan:
            continue
        if plan is not None:
            plans.append(plan)
    return plans


def _node_plan(rt: RuntimeArgs) -> Plan:
    """A plan for node-wide verbs, which name no container."""
    return Plan(container_id=rt.container_id or "none", cni_args=list(rt.args), attachments=[])
