"""multus ADD/DEL/CHECK/STATUS/GC: a pod's cluster network plus every network it selects.

ADD resolves everything first (pod, NADs, devices, interface names, default routes), writes the
plan, then attaches in order, cluster network first; a failure DELs what was attached, in
reverse, and reports the delegate's error. DEL needs only the plan: it works with the API server
and the kubelet down, continues past a failing delegate, and keeps the plan until every DEL has
succeeded. CHECK checks every attachment; STATUS and GC go to every network the node uses.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni.errors import (
    AlreadyExists,
    CNIError,
    DecodingFailure,
    IncompatibleVersion,
    InternalError,
    InvalidConfig,
    PluginNotAvailable,
    UnsupportedField,
)
from pycni.cni.runtime import RuntimeArgs
from pycni.cni.types import Result
from pycni.meta_multus import attach, claim_status, guards, node, pods
from pycni.meta_multus import status as network_status
from pycni.meta_multus.allotment import DeviceAllotment
from pycni.meta_multus.call import MultusCall
from pycni.meta_multus.claimed import PodClaims
from pycni.meta_multus.config import MultusConf
from pycni.meta_multus.plan import CorruptPlan, Plan, PlanStore, new_plan
from pycni.meta_multus.pods import PodArgs
from pycni.meta_multus.resolve import Resolver, info_dir
from pycni.meta_multus.teardown import forget_written_status, rebuild, teardown

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.k8s.objects import Pod, PodSource

log = logging.getLogger(__name__)


def add(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> Result:
    with guards.log_file(conf), guards.logged("ADD", rt), guards.pod_lock(ctx, rt.container_id):
        guards.wait_ready(conf)
        store = PlanStore(conf.cni_dir, info_dir(conf))
        if store.exists(rt.container_id):
            raise AlreadyExists(
                f"container {rt.container_id} already has attachments "
                f"({store.path(rt.container_id)}): DEL it first"
            )
        source = pods.open_source(conf, rt)
        pod = pods.find_pod(source, PodArgs.from_rt(rt), adding=True)
        claims = PodClaims(pod, lambda: pods.claim_source(source))
        devices = DeviceAllotment(lambda: pods.devices(conf, pod), claims=claims)
        resolver = Resolver(conf, rt, source, pod, devices)
        plan = new_plan(rt, pod, resolver.attachments())
        log.info(
            "ADD %s: %s", rt.container_id, ", ".join(f"{a.network} on {a.ifname}" for a in plan.attachments)
        )
        _refuse_existing_ifnames(rt, plan)
        store.save(plan)
        call = MultusCall(conf, rt, ctx, store)
        results = _attach_all(call, plan)
        if pod is not None and source is not None:
            _publish(call, plan, source, pod, network_status.of_plan(plan, results))
            claim_status.publish(source, pod, plan, results)
        return results[0].model_copy(update={"cni_version": conf.cni_version})


def delete(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    with guards.log_file(conf), guards.logged("DEL", rt), guards.pod_lock(ctx, rt.container_id):
        if conf.readiness_indicator_file and not Path(conf.readiness_indicator_file).exists():
            log.warning("readiness indicator %s is missing; deleting anyway", conf.readiness_indicator_file)
        store = PlanStore(conf.cni_dir, info_dir(conf))
        try:
            plan = store.load(rt.container_id, rt.ifname)
        except CorruptPlan as err:
            log.warning("rebuilding the attachments of %s: %s", rt.container_id, err)
            plan = None
        if plan is not None and not plan.cni_args:  # multus-cni's array keeps no CNI_ARGS
            plan.cni_args = list(rt.args)
        if plan is None:
            plan = rebuild(conf, rt)
            if plan is None:
                log.info("DEL %s: no plan and nothing cached or resolvable: nothing to do", rt.container_id)
                store.remove(rt.container_id)
                return
            log.info("DEL %s: no plan; rebuilt %d attachments", rt.container_id, len(plan.attachments))
        errors = teardown(MultusCall(conf, rt, ctx, store), plan, records=True)
        if errors:
            raise errors[0] if len(errors) == 1 else InternalError("; ".join(e.msg for e in errors))


def check(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    with guards.log_file(conf), guards.logged("CHECK", rt), guards.pod_lock(ctx, rt.container_id):
        try:
            plan = PlanStore(conf.cni_dir, info_dir(conf)).load(rt.container_id, rt.ifname)
        except CorruptPlan as err:
            raise InternalError(f"the attachment plan of {rt.container_id} is damaged: {err}") from err
        if plan is None:
            raise InvalidConfig(f"container {rt.container_id} has no multus attachments: was it added?")
        for att in plan.attachments:
            try:
                attach.check(conf, plan, att, rt, ctx)
            except CNIError as err:
                raise att.failed(err) from err


def status(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    """STATUS of every network the node uses; the cluster network's failure is the node's answer."""
    with guards.log_file(conf), guards.logged("STATUS", rt):
        guards.wait_ready(conf, PluginNotAvailable)
        node.status(conf, rt, ctx)


def gc(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    """DEL every pod the runtime no longer lists, then GC every network with what is left."""
    with guards.log_file(conf), guards.logged("GC", rt):
        guards.wait_ready(conf)
        errors = node.collect(conf, rt, ctx, {a.container_id for a in conf.valid_attachments or []})
        if errors:
            raise InternalError("; ".join(errors))


# -- ADD ---------------------------------------------------------------------------------------
def _refuse_existing_ifnames(rt: RuntimeArgs, plan: Plan) -> None:
    """An interface the pod already has is an error before anything runs (the reference's validateIfName)."""
    from pycni.net import links, netns

    with netns.rtnl(rt.netns) as pod:
        for att in plan.attachments:
            if links.find_link(pod, att.ifname) is not None:
                raise links.LinkExists(
                    f"interface {att.ifname!r} for network {att.network} already exists in {rt.netns}"
                )


def _attach_all(call: MultusCall, plan: Plan) -> list[Result]:
    """ADD in order; on a failure, DEL the failed one and those before it in reverse, then raise."""
    results: list[Result] = []
    for index, att in enumerate(plan.attachments):
        try:
            results.append(attach.add(call.conf, plan, att, call.rt, call.ctx))
        except BaseException as err:
            for later in plan.attachments[index + 1 :]:
                later.deleted = True  # never attempted: nothing to undo
            _roll_back(call, plan)
            if isinstance(err, CNIError):
                raise att.failed(err) from err
            raise
    return results


#: A delegate refusing its config: every later DEL of that config would be refused the same way.
CONFIG_REFUSALS = (IncompatibleVersion, UnsupportedField, DecodingFailure, InvalidConfig)


def _roll_back(call: MultusCall, plan: Plan) -> None:
    """DEL what a failed ADD attached. The plan stays for the runtime's DEL only when that DEL
    could do better: if every undo failed because a delegate refuses its config, a DEL would
    fail identically, forever, so the plan goes (the delegate never accepted that config)."""
    undo_errors = teardown(call, plan)
    if not undo_errors:
        return
    messages = [e.msg for e in undo_errors]
    container_id = plan.container_id
    if all(isinstance(e, CONFIG_REFUSALS) for e in undo_errors):
        log.warning(
            "rollback of %s: delegates refuse their configs, nothing to keep: %s", container_id, messages
        )
        call.plans.remove(container_id)
    else:
        log.warning("rollback of %s left work for DEL: %s", container_id, messages)


def _publish(
    call: MultusCall, plan: Plan, source: PodSource, pod: Pod, entries: list[dict[str, Any]]
) -> None:
    """Write network-status (undoing every attachment if that fails), then post the events.

    The plan is not written again for it: where the status is a file apart from the pod, the
    plan written before the delegates already names the pod, and DEL computes what this ADD
    wrote from the cached results (`teardown.forget_status`), so a process killed at any point
    leaves no status file that its DEL would not remove. A write that failed after the file
    was in place takes the file with it.
    """
    try:
        source.write_network_status(pod, entries)
    except BaseException:
        if source.status_kept_apart:
            forget_written_status(source, pod, entries, plan.container_id)
        teardown(call, plan)
        raise
    for entry in entries:
        source.event(pod, "AddedInterface", network_status.describe(entry))
