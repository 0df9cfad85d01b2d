"""Undoing a pod's attachments: from its plan, or, when the plan is lost or damaged, from what
is left to know them by (the cached results, which hold each attachment's exact config, and the
pod's own networks from the API).

Every attachment's DEL runs even when another failed; the plan is rewritten with what is done
and removed only when nothing is left, so the runtime's retried DEL finishes the job.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni import callerview
from pycni.cni.callerview import LeftLink
from pycni.cni.errors import CNIError, to_error
from pycni.libcni.cache import CachedAttachment, ResultCache
from pycni.meta_multus import attach, pods
from pycni.meta_multus import status as network_status
from pycni.meta_multus.allotment import DeviceAllotment
from pycni.meta_multus.claimed import PodClaims
from pycni.meta_multus.plan import Plan, PlannedAttachment, new_plan
from pycni.meta_multus.pods import PodArgs
from pycni.meta_multus.resolve import Resolver, info_dir

if TYPE_CHECKING:
    from pycni.cni.runtime import RuntimeArgs
    from pycni.k8s.objects import Pod, PodSource
    from pycni.meta_multus.call import MultusCall
    from pycni.meta_multus.config import MultusConf

log = logging.getLogger(__name__)


def teardown(call: MultusCall, plan: Plan, *, records: bool = False) -> list[CNIError]:
    """DEL every attachment not yet deleted, in reverse, past failures; the plan goes when all did.

    `records`: the pod is going (DEL, GC), so the network-status and claim records that outlive it
    (manifest-mode files) go too, before the plan that names them: a process killed in between
    leaves a plan whose retried DEL finishes, never a record nothing names. The status file goes
    first, while the cached results it is told apart by are all still there.
    """
    if records:
        forget_status(call.conf, plan, call.rt)
    errors: list[CNIError] = []
    with callerview.links_left_to_me() as left:
        owners: list[PlannedAttachment] = []
        for att in reversed(plan.pending()):
            try:
                attach.delete(call.conf, plan, att, call.rt, call.ctx)
                att.deleted = True
            except Exception as exc:
                errors.append(att.failed(to_error(exc)))
            owners.extend([att] * (len(left) - len(owners)))  # the links its DEL left
    errors.extend(_delete_left_links(left, owners))
    if errors:
        call.plans.save(plan)
        return errors
    if records:
        from pycni.meta_multus import claim_status

        claim_status.forget(call.conf, plan, call.rt)
    call.plans.remove(plan.container_id)
    return errors


def _delete_left_links(left: list[LeftLink], owners: list[PlannedAttachment]) -> list[CNIError]:
    """The pod links the delegates' DELs left to us, deleted together (one kernel wait, not one
    per network); an attachment whose link stays is not deleted, so the retried DEL runs again."""
    if not left:
        return []
    from pycni.attach.veth import delete_left_links

    errors: list[CNIError] = []
    for att, failure in zip(owners, delete_left_links(left), strict=True):
        if failure is not None:
            if att.deleted:
                att.deleted = False
                errors.append(att.failed(to_error(failure)))
            else:  # its DEL failed already and says so
                log.warning("DEL of network %s: its link stays: %s", att.network, failure)
    return errors


def rebuild(conf: MultusConf, rt: RuntimeArgs) -> Plan | None:
    """A plan for DEL without one: the cached attachments of the container, plus the pod's
    networks if the API still knows the pod, else at least its cluster network."""
    source: PodSource | None = None
    pod = None
    try:
        source = pods.open_source(conf, rt)
        pod = pods.find_pod(source, PodArgs.from_rt(rt), adding=False)
    except CNIError as err:
        log.warning("DEL of %s without a plan and without the pod: %s", rt.container_id, err.msg)
    cache = ResultCache(conf.cni_dir)
    mine = [e for e in cache.all_attachments() if e.container_id == rt.container_id]
    found = [a for e in mine if (a := from_cache(e, rt, info_dir(conf)))]
    known = {(a.network_name, a.ifname) for a in found}
    claims = PodClaims(pod, lambda: pods.claim_source(source), quiet=True)
    devices = DeviceAllotment(lambda: pods.devices(conf, pod, quiet=True), required=False, claims=claims)
    resolver = Resolver(conf, rt, source, pod, devices)
    try:
        resolved = resolver.attachments()
    except CNIError as err:
        log.warning("DEL of %s: cannot resolve the pod's networks (%s)", rt.container_id, err.msg)
        try:
            resolved = [resolver.attachment(resolver.cluster_network(), None, 0)]
        except CNIError as err2:
            log.warning("DEL of %s: no cluster network either: %s", rt.container_id, err2.msg)
            resolved = []
    found += [a for a in resolved if (a.network_name, a.ifname) not in known]
    found.sort(key=lambda a: not a.default)  # the cluster network first: it is deleted last
    return new_plan(rt, pod, found) if found else None


def from_cache(entry: CachedAttachment, rt: RuntimeArgs, info_dir: Path) -> PlannedAttachment | None:
    """A cached result as an attachment: its config as run, its interface, its runtime requests.

    Its device-info file is deleted with it, so only a path in `info_dir` (where ADD puts the
    copies) is taken from the cached config: a config cannot name a file to delete."""
    listed = cached_network(entry.config)
    if listed is None:
        return None
    runtime = listed["plugins"][0].get("runtimeConfig") or {}
    info_file = str(runtime.get("CNIDeviceInfoFile") or "") if isinstance(runtime, dict) else ""
    if info_file and Path(info_file).parent != info_dir:
        log.warning("ignoring device-info file %s of %s: not in %s", info_file, entry.container_id, info_dir)
        info_file = ""
    return PlannedAttachment(
        network=entry.network,
        ifname=entry.ifname,
        default=entry.ifname == rt.ifname,
        conflist=listed,
        capability_args=entry.capability_args,
        device_id=str(runtime.get("deviceID") or "") if isinstance(runtime, dict) else "",
        device_info_file=info_file,
    )


def cached_network(config: bytes) -> dict[str, Any] | None:
    """The network list a cached result was made with (a plan lost, its networks still known)."""
    try:
        value = json.loads(config)
    except ValueError:
        return None
    ok = isinstance(value, dict) and isinstance(value.get("plugins"), list) and value["plugins"]
    return value if ok and all(isinstance(p, dict) for p in value["plugins"]) else None


def forget_status(conf: MultusConf, plan: Plan, rt: RuntimeArgs) -> None:
    """The pod's network-status record, if the source keeps one apart from the pod (manifests)
    and it is still the one this sandbox wrote (a newer sandbox of the pod may have replaced it).

    What was written is computed again from the cached results (`status.of_plan`), as ADD
    computed it; plans of earlier versions recorded it (`networkStatus`). A result missing from
    the cache means this sandbox's ADD never got to write a status: nothing of it to remove.
    """
    if not plan.pod_name:
        return
    try:
        source = pods.open_source(conf, rt, records_only=True)
        if source is None or not source.status_kept_apart:
            return
        entries = plan.network_status
        if entries is None:
            results = [attach.cached_result(conf, plan, att) for att in plan.attachments]
            if not results or any(r is None for r in results):
                return
            entries = network_status.of_plan(plan, [r for r in results if r is not None])
        forget_written_status(source, _pod_of(plan), entries, plan.container_id)
    except Exception as err:
        log.warning("cannot remove the network-status of %s/%s: %s", plan.pod_namespace, plan.pod_name, err)


def forget_written_status(
    source: PodSource, pod: Pod, entries: list[dict[str, Any]], container_id: str
) -> None:
    """Remove the status file if it holds `entries`; never fails (logged)."""
    try:
        source.forget_network_status(pod, entries)
    except Exception as err:
        log.warning(
            "cannot remove the network-status of %s/%s (%s): %s", pod.namespace, pod.name, container_id, err
        )


def _pod_of(plan: Plan) -> Pod:
    from pycni.k8s.objects import ObjectMeta, Pod

    return Pod(metadata=ObjectMeta(name=plan.pod_name, namespace=plan.pod_namespace, uid=plan.pod_uid))
