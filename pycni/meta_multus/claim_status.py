"""Each claimed device's network data, written into its ResourceClaim after ADD (KEP-4817).

For every attachment whose device came from a claim, the claim's `status.devices[]` entry for
that device gets the interface's name in the pod, its IPs (CIDRs), its MAC and a Ready condition,
so users and controllers see the pod's secondary networks where the device is. One write per
claim, merged with the entries others wrote. Best effort: the pod is attached whether or not the
record is written; a failure is logged and posted as an event on the pod. DEL needs no API
server: the entries go with the claim's allocation (a manifest directory's files, which nothing
else would clean, go with the pod's DEL).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pycni.k8s import claims as dra
from pycni.k8s.objects import ObjectMeta
from pycni.meta_multus import pods

if TYPE_CHECKING:
    from pycni.cni.runtime import RuntimeArgs
    from pycni.cni.types import Result
    from pycni.k8s.objects import Pod, PodSource
    from pycni.meta_multus.claimed import ClaimedDevice
    from pycni.meta_multus.config import MultusConf
    from pycni.meta_multus.plan import Plan, PlannedAttachment

log = logging.getLogger(__name__)

NOT_WRITTEN = "NetworkDataNotWritten"


def publish(source: PodSource, pod: Pod, plan: Plan, results: list[Result]) -> None:
    """Write the network data of every claimed device of the plan, one claim at a time."""
    per_claim: dict[tuple[str, str], tuple[ClaimedDevice, list[dict[str, Any]]]] = {}
    for att, result in zip(plan.attachments, results, strict=True):
        if att.claimed is not None:
            key = (att.claimed.namespace, att.claimed.claim)
            per_claim.setdefault(key, (att.claimed, []))[1].append(_entry(att, att.claimed, result, pod))
    for (namespace, name), (claimed, entries) in per_claim.items():
        meta = ObjectMeta(name=name, namespace=namespace, uid=claimed.claim_uid)
        try:
            claims = pods.claim_source(source)
            if claims is not None:
                claims.write_claim_devices(dra.ResourceClaim(metadata=meta), entries)
        except Exception as err:
            text = f"cannot write the network data of ResourceClaim {namespace}/{name}: {err}"
            log.warning("ADD %s: %s", plan.container_id, text)
            source.event(pod, NOT_WRITTEN, text, warning=True)


def _entry(att: PlannedAttachment, claimed: ClaimedDevice, result: Result, pod: Pod) -> dict[str, Any]:
    """The device's entry from the attachment's result: its interface in the pod, that
    interface's IPs (those of no interface too) and MAC."""
    index = next(
        (i for i, iface in enumerate(result.interfaces) if iface.sandbox and iface.name == att.ifname), None
    )
    mac = result.interfaces[index].mac or "" if index is not None else ""
    ips = [str(ip.address) for ip in result.ips if ip.interface is None or ip.interface == index]
    message = f"{att.ifname} of pod {pod.namespace}/{pod.name} on network {att.network}"
    return dra.device_status(claimed.result, att.ifname, ips, mac, message)


def forget(conf: MultusConf, plan: Plan, rt: RuntimeArgs) -> None:
    """On DEL: the source drops the entries where they outlive the pod (files); never fails."""
    per_claim: dict[tuple[str, str], list[dra.DeviceResult]] = {}
    for att in plan.attachments:
        if att.claimed is not None:
            per_claim.setdefault((att.claimed.namespace, att.claimed.claim), []).append(att.claimed.result)
    if not per_claim:
        return
    try:
        claims = pods.claim_source(pods.open_source(conf, rt, records_only=True))
        for (namespace, name), results in per_claim.items():
            if claims is not None:
                claims.forget_claim_devices(namespace, name, results)
    except Exception as err:
        log.warning("DEL %s: cannot remove the claims' network data: %s", plan.container_id, err)
