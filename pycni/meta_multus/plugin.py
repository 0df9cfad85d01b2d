"""multus ADD/DEL/CHECK/STATUS/GC: a pod's cluster network plus every network it selects.

ADD resolves everything first (pod, NADs, devices, interface names, default routes), writes the
plan, then attaches in order, cluster network first; a failure DELs what was attached, in
reverse, and reports the delegate's error. DEL needs only the plan: it works with the API server
and the kubelet down, continues past a failing delegate, and keeps the plan until every DEL has
succeeded. CHECK checks every attachment; STATUS and GC go to every network the node uses.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycni.cni import version
from pycni.cni.errors import (
    AlreadyExists,
    CNIError,
    InternalError,
    InvalidConfig,
    PluginNotAvailable,
    TryAgainLater,
    UnknownContainer,
    to_error,
)
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import Result
from pycni.libcni import netlist
from pycni.libcni.cache import ResultCache
from pycni.libcni.conflist import NetConfList
from pycni.meta_multus import attach
from pycni.meta_multus import status as network_status
from pycni.meta_multus.config import LOG_LEVELS, MultusConf
from pycni.meta_multus.plan import CorruptPlan, Plan, PlannedAttachment, PlanStore
from pycni.meta_multus.resolve import PodArgs, Resolver
from pycni.net import lock

if TYPE_CHECKING:
    from pycni.cni.plugin import Context
    from pycni.k8s.objects import Pod, PodSource

log = logging.getLogger(__name__)

#: The reference waits this long for the readiness indicator file on ADD, STATUS and GC.
READINESS_TIMEOUT = 45.0
READINESS_POLL = 0.25


def add(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> Result:
    with _logging(conf), _pod_lock(ctx, rt):
        _wait_ready(conf)
        store = PlanStore(conf.cni_dir)
        if store.exists(rt.container_id):
            raise AlreadyExists(
                f"container {rt.container_id} already has attachments "
                f"({store.path(rt.container_id)}): DEL it first"
            )
        source = open_source(conf, rt)
        pod = find_pod(source, PodArgs.from_rt(rt), adding=True)
        resolver = Resolver(conf, rt, source, pod, lambda: _pod_devices(conf, pod))
        plan = _new_plan(rt, pod, resolver.attachments())
        _refuse_existing_ifnames(rt, plan)
        store.save(plan)
        results = _attach_all(conf, plan, store, rt, ctx)
        entries = [
            entry
            for att, result in zip(plan.attachments, results, strict=True)
            for entry in network_status.entries(
                result,
                att.network,
                att.ifname,
                default=att.default,
                gateways=att.gateways,
                device_info=attach.device_info(att),
            )
        ]
        if pod is not None and source is not None:
            _publish(conf, plan, store, rt, ctx, source, pod, entries)
        return results[0].model_copy(update={"cni_version": conf.cni_version})


def delete(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    with _logging(conf), _pod_lock(ctx, rt):
        if conf.readiness_indicator_file and not Path(conf.readiness_indicator_file).exists():
            log.warning("readiness indicator %s is missing; deleting anyway", conf.readiness_indicator_file)
        store = PlanStore(conf.cni_dir)
        try:
            plan = store.load(rt.container_id)
        except CorruptPlan as err:
            log.warning("rebuilding the attachments of %s: %s", rt.container_id, err)
            plan = None
        if plan is None:
            plan = _rebuild(conf, rt)
            if plan is None:
                store.remove(rt.container_id)
                return
        errors = teardown(conf, plan, store, rt, ctx)
        if errors:
            raise errors[0] if len(errors) == 1 else InternalError("; ".join(e.msg for e in errors))
        _forget_status(conf, plan, rt)


def check(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    with _logging(conf), _pod_lock(ctx, rt):
        try:
            plan = PlanStore(conf.cni_dir).load(rt.container_id)
        except CorruptPlan as err:
            raise InternalError(f"the attachment plan of {rt.container_id} is damaged: {err}") from err
        if plan is None:
            raise InvalidConfig(f"container {rt.container_id} has no multus attachments: was it added?")
        for att in plan.attachments:
            try:
                attach.check(conf, plan, att, rt, ctx)
            except CNIError as err:
                raise type(err)(f"network {att.network} on {att.ifname}: {err.msg}", err.details) from err


def status(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    """STATUS of every network the node uses; the cluster network's failure is the node's answer."""
    with _logging(conf):
        _wait_ready(conf, PluginNotAvailable)
        failures: list[CNIError] = []
        for att in node_networks(conf, rt):
            try:
                call = attach.network_call(conf, _stub_plan(rt), att, rt)
                if version.at_least(call.version, "1.1.0"):  # libcni: STATUS is a 1.1.0 verb
                    netlist.status(call, ctx.delegate)
            except CNIError as err:
                if att.default:
                    raise
                failures.append(PluginNotAvailable(f"network {att.network}: {err.msg}", err.details))
        if failures:
            raise PluginNotAvailable("; ".join(f.msg for f in failures))


def gc(conf: MultusConf, rt: RuntimeArgs, ctx: Context) -> None:
    """DEL every planned pod the runtime no longer lists, then GC every network with what is left."""
    with _logging(conf):
        _wait_ready(conf)
        valid_ids = {a.container_id for a in conf.valid_attachments or []}
        store = PlanStore(conf.cni_dir)
        errors: list[str] = []
        kept: list[Plan] = []
        for container_id in store.container_ids():
            with _pod_lock(ctx, rt.with_command(Command.GC), container_id):
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
                    continue
                errors += [e.msg for e in teardown(conf, plan, store, rt, ctx)]
        errors += _gc_networks(conf, rt, ctx, kept, valid_ids)
        if errors:
            raise InternalError("; ".join(errors))


# -- ADD ---------------------------------------------------------------------------------------
def _new_plan(rt: RuntimeArgs, pod: Pod | None, attachments: list[PlannedAttachment]) -> Plan:
    return Plan(
        container_id=rt.container_id,
        netns=rt.netns,
        pod_namespace=pod.namespace if pod else PodArgs.from_rt(rt).namespace,
        pod_name=pod.name if pod else PodArgs.from_rt(rt).name,
        pod_uid=pod.uid if pod else PodArgs.from_rt(rt).uid,
        cni_args=list(rt.args),
        attachments=attachments,
    )


def _refuse_existing_ifnames(rt: RuntimeArgs, plan: Plan) -> None:
    """An interface the pod already has is an error before anything runs (the reference's validateIfName)."""
    from pycni.net import ip, netns

    with netns.rtnl(rt.netns) as pod:
        for att in plan.attachments:
            if ip.find_link(pod, att.ifname) is not None:
                raise ip.LinkExists(
                    f"interface {att.ifname!r} for network {att.network} already exists in {rt.netns}"
                )


def _attach_all(
    conf: MultusConf, plan: Plan, store: PlanStore, rt: RuntimeArgs, ctx: Context
) -> list[Result]:
    """ADD in order; on a failure, DEL the failed one and those before it in reverse, then raise."""
    results: list[Result] = []
    for index, att in enumerate(plan.attachments):
        try:
            results.append(attach.add(conf, plan, att, rt, ctx))
        except BaseException as err:
            for later in plan.attachments[index + 1 :]:
                later.deleted = True  # never attempted: nothing to undo
            undo_errors = teardown(conf, plan, store, rt, ctx)
            if undo_errors:
                log.warning(
                    "rollback of %s left work for DEL: %s", rt.container_id, [e.msg for e in undo_errors]
                )
            if isinstance(err, CNIError):
                raise type(err)(f"network {att.network} on {att.ifname}: {err.msg}", err.details) from err
            raise
    return results


def _publish(
    conf: MultusConf,
    plan: Plan,
    store: PlanStore,
    rt: RuntimeArgs,
    ctx: Context,
    source: PodSource,
    pod: Pod,
    entries: list[dict[str, Any]],
) -> None:
    """Write network-status (undoing every attachment if that fails), then post the events."""
    try:
        source.write_network_status(pod, entries)
    except BaseException:
        teardown(conf, plan, store, rt, ctx)
        raise
    plan.network_status = entries
    store.save(plan)
    for entry in entries:
        source.event(pod, "AddedInterface", network_status.describe(entry))


# -- DEL ---------------------------------------------------------------------------------------
def teardown(conf: MultusConf, plan: Plan, store: PlanStore, rt: RuntimeArgs, ctx: Context) -> list[CNIError]:
    """DEL every attachment not yet deleted, in reverse, past failures; the plan goes when all did."""
    errors: list[CNIError] = []
    for att in reversed(plan.pending()):
        try:
            attach.delete(conf, plan, att, rt, ctx)
            att.deleted = True
        except Exception as exc:
            err = to_error(exc)
            errors.append(type(err)(f"network {att.network} on {att.ifname}: {err.msg}", err.details))
    if errors:
        store.save(plan)
    else:
        store.remove(plan.container_id)
    return errors


def _rebuild(conf: MultusConf, rt: RuntimeArgs) -> Plan | None:
    """Without a (usable) plan: the pod's attachments from the API, else its cluster network."""
    source: PodSource | None = None
    pod = None
    try:
        source = open_source(conf, rt)
        pod = find_pod(source, PodArgs.from_rt(rt), adding=False)
    except CNIError as err:
        log.warning("DEL of %s without a plan and without the pod: %s", rt.container_id, err.msg)
    resolver = Resolver(conf, rt, source, pod, lambda: _pod_devices(conf, pod, quiet=True))
    try:
        attachments = resolver.attachments()
    except CNIError as err:
        log.warning(
            "DEL of %s: cannot resolve the pod's networks (%s); deleting its cluster network",
            rt.container_id,
            err.msg,
        )
        try:
            attachments = [resolver.attachment(resolver.cluster_network(), None, 0)]
        except CNIError as err2:
            log.warning("DEL of %s: nothing to delete: %s", rt.container_id, err2.msg)
            return None
    return _new_plan(rt, pod, attachments)


def _forget_status(conf: MultusConf, plan: Plan, rt: RuntimeArgs) -> None:
    if not plan.network_status or not plan.pod_name:
        return
    from pycni.k8s.objects import ObjectMeta, Pod

    try:
        source = open_source(conf, rt)
        if source is not None:
            meta = ObjectMeta(name=plan.pod_name, namespace=plan.pod_namespace, uid=plan.pod_uid)
            source.forget_network_status(Pod(metadata=meta), plan.network_status)
    except Exception as err:
        log.warning("cannot remove the network-status of %s/%s: %s", plan.pod_namespace, plan.pod_name, err)


# -- STATUS, GC --------------------------------------------------------------------------------
def node_networks(conf: MultusConf, rt: RuntimeArgs) -> list[PlannedAttachment]:
    """Every network the node uses, once each: the cluster and default networks, then those of the
    plans on disk (the cluster network marked `default`)."""
    resolver = Resolver(conf, rt, open_source(conf, rt), None, dict)
    found: dict[str, PlannedAttachment] = {}
    networks = [resolver.cluster_network(), *resolver.default_networks()]
    for index, net in enumerate(networks):
        found.setdefault(
            str(net.conflist["name"]),
            PlannedAttachment(network=net.status_name, ifname="", default=index == 0, conflist=net.conflist),
        )
    store = PlanStore(conf.cni_dir)
    for container_id in store.container_ids():
        try:
            plan = store.load(container_id)
        except CorruptPlan:
            continue
        for att in plan.attachments if plan else []:
            found.setdefault(att.network_name, att.model_copy(update={"default": False}))
    for entry in ResultCache(conf.cni_dir).all_attachments():
        if entry.network not in found and (cached := _cached_network(entry.config)) is not None:
            found[entry.network] = PlannedAttachment(network=entry.network, ifname="", conflist=cached)
    return list(found.values())


def _cached_network(config: bytes) -> dict[str, Any] | None:
    """The network list a cached result was made with (a plan lost, its networks still known)."""
    try:
        value = json.loads(config)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "plugins" in value else None


def _gc_networks(
    conf: MultusConf, rt: RuntimeArgs, ctx: Context, kept: list[Plan], valid_ids: set[str]
) -> list[str]:
    """DEL the cached attachments of gone pods that no plan names (a lost plan), then GC each
    network with the attachments of the pods still valid."""
    cache = ResultCache(conf.cni_dir)
    errors = _del_cached_orphans(conf, rt, ctx, cache, valid_ids)
    valid: dict[str, list[dict[str, str]]] = {}
    for plan in kept:
        for att in plan.attachments:
            valid.setdefault(att.network_name, []).append(
                {"containerID": plan.container_id, "ifname": att.ifname}
            )
    for entry in cache.all_attachments():
        pair = {"containerID": entry.container_id, "ifname": entry.ifname}
        if entry.container_id in valid_ids and pair not in valid.setdefault(entry.network, []):
            valid[entry.network].append(pair)
    try:
        attachments = node_networks(conf, rt)
    except CNIError as err:
        errors.append(f"cannot list the node's networks: {err.msg}")
        attachments = []
    for att in attachments:
        try:
            call = attach.network_call(conf, _stub_plan(rt), att, rt)
            netlist.gc(call, ctx.delegate, valid.get(att.network_name, []))
        except CNIError as err:
            errors.append(f"network {att.network}: {err.msg}")
    return errors


def _del_cached_orphans(
    conf: MultusConf, rt: RuntimeArgs, ctx: Context, cache: ResultCache, valid_ids: set[str]
) -> list[str]:
    """A cached result carries everything its DEL needs: config, netns, interface, args."""
    errors: list[str] = []
    path = tuple(dict.fromkeys((conf.bin_dir, *rt.path)))
    for entry in cache.all_attachments():
        if entry.container_id in valid_ids or PlanStore(conf.cni_dir).exists(entry.container_id):
            continue
        listed = _cached_network(entry.config)
        if listed is None:
            cache.remove(entry.network, entry.container_id, entry.ifname)
            continue
        args = tuple((str(k), str(v)) for k, v in entry.cni_args)
        call = netlist.NetworkCall(
            netlist=NetConfList.from_json(listed),
            rt=RuntimeArgs(Command.DEL, entry.container_id, entry.netns, entry.ifname, args, path, rt.env),
            cache=cache,
            capability_args=entry.capability_args,
        )
        try:
            netlist.delete(call, ctx.delegate)
        except CNIError as err:
            errors.append(f"network {entry.network} of gone container {entry.container_id}: {err.msg}")
    return errors


def _stub_plan(rt: RuntimeArgs) -> Plan:
    """A plan for node-wide verbs, which name no container."""
    return Plan(container_id=rt.container_id or "none", cni_args=list(rt.args), attachments=[])


# -- shared ------------------------------------------------------------------------------------
def open_source(conf: MultusConf, rt: RuntimeArgs) -> PodSource | None:
    """The API server when `kubeconfig` is set, else the manifest directory, else none."""
    if conf.kubeconfig:
        from pycni.k8s.apiserver import ApiServer

        return ApiServer(conf.kubeconfig, rt.env)
    if conf.manifests:
        from pycni.k8s.manifests import ManifestSource

        return ManifestSource(Path(conf.manifests), conf.status_dir)
    return None


def find_pod(source: PodSource | None, args: PodArgs, *, adding: bool) -> Pod | None:
    """The pod CNI_ARGS names; on ADD it must exist and be the same pod (UID) as the runtime's."""
    if source is None or not args.name:
        return None
    pod = source.pod(args.namespace or "default", args.name, wait=adding)
    if pod is None:
        if adding:
            raise TryAgainLater(f"pod {args.namespace}/{args.name} not found")
        return None
    if args.uid and pod.uid and args.uid != pod.uid and not pod.is_static:
        if adding:
            raise UnknownContainer(
                f"pod {pod.namespace}/{pod.name} has UID {pod.uid}, the runtime asked for {args.uid}: "
                "the pod was deleted and re-created"
            )
        return None
    return pod


def _pod_devices(conf: MultusConf, pod: Pod | None, *, quiet: bool = False) -> dict[str, list[str]]:
    if pod is None:
        return {}
    from pycni.k8s.podresources import pod_devices

    try:
        return pod_devices(conf.pod_resources_socket, pod.namespace, pod.name)
    except CNIError as err:
        if quiet:
            log.warning("no device IDs for pod %s/%s: %s", pod.namespace, pod.name, err.msg)
            return {}
        raise


def _wait_ready(conf: MultusConf, error: type[CNIError] = TryAgainLater) -> None:
    """Wait (polling) up to 45 s for `readinessindicatorfile`, as the reference does."""
    if not conf.readiness_indicator_file:
        return
    path = Path(conf.readiness_indicator_file)
    deadline = time.monotonic() + READINESS_TIMEOUT
    while not path.exists():
        if time.monotonic() >= deadline:
            raise error(f"readiness indicator file {path} did not appear within {READINESS_TIMEOUT:.0f}s")
        time.sleep(READINESS_POLL)


@contextmanager
def _pod_lock(ctx: Context, rt: RuntimeArgs, container_id: str = "") -> Iterator[None]:
    """One operation at a time per pod (NPWG §7.3); a crashed holder's lock goes with it."""
    name = container_id or rt.container_id
    with lock.flock(lock.resource_lock(ctx.settings.run_dir, "multus", name), what=f"multus pod {name}"):
        yield


@contextmanager
def _logging(conf: MultusConf) -> Iterator[None]:
    """`logFile` at `logLevel` for this call (our own logging still follows PYCNI_LOG_*)."""
    if not conf.log_file:
        yield
        return
    handler = logging.FileHandler(conf.log_file)
    handler.setLevel(LOG_LEVELS[conf.log_level])
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("pycni")
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
