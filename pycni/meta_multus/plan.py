"""The attachment plan: what ADD is about to do to a pod, kept until DEL has undone all of it.

`<cniDir>/<container ID>` (0600), written atomically (temp file, rename) once per ADD, before
the first delegate runs, and rewritten only when a teardown leaves attachments behind, so a DEL
never needs the API server or the kubelet, and a DEL that failed part-way is finished by the
next one. It is not flushed to disk, as multus-cni's cache and libcni's are not: a process
killed at any point leaves the plan whole (the page cache outlives it), and the node crash that
could tear it also ends every pod it describes; DEL then finds it missing or failing its
checksum and rebuilds it from the result caches and the API (`teardown.rebuild`). A flush cost
an ADD 1 to 9 ms, twice. Each attachment holds the network list exactly as it was run (device
IDs injected), its interface and what its runtime requests were. A checksum over the content
tells a damaged file from a plan.

The file is multus-cni's scratch cache, the array its DEL reads (`pycni.meta_multus.scratch`),
with our plan inside; so is the array multus-cni wrote for pods it attached, which `load` reads
as a plan. Plans of earlier pycni versions (an object of kind `pycniMultusPlan`) still load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from pycni.cni.config import Model
from pycni.cni.errors import CNIError, InvalidEnvironment
from pycni.cni.files import write_atomic
from pycni.cni.runtime import NAME_PATTERN, RuntimeArgs, is_valid_name
from pycni.meta_multus import scratch
from pycni.meta_multus.claimed import ClaimedDevice
from pycni.meta_multus.pods import PodArgs

if TYPE_CHECKING:
    from pycni.k8s.objects import Pod

log = logging.getLogger(__name__)

KIND = "pycniMultusPlan"
FORMAT = 1


class PlannedAttachment(Model):
    """One network on one pod interface."""

    network: str = Field(description="The network-status name: 'namespace/nad', or the config name.")
    ifname: str
    default: bool = Field(False, description="The cluster network: its result is the pod's.")
    conflist: dict[str, Any] = Field(description="The network list as run (deviceID, cni-args injected).")
    capability_args: dict[str, Any] = Field(default_factory=dict, alias="capabilityArgs")
    resource_name: str = Field("", alias="resourceName")
    device_id: str = Field("", alias="deviceID")
    device_info_file: str = Field("", alias="deviceInfoFile", description="The copy handed to the delegate.")
    gateways: list[str] = Field(default_factory=list, description="Its default-route request.")
    claims_default_route: bool = Field(
        False, alias="claimsDefaultRoute", description="Its selection had default-route (even empty)."
    )
    filter_families: list[int] = Field(
        default_factory=list, alias="filterFamilies", description="IP versions whose default routes it loses."
    )
    claimed: ClaimedDevice | None = Field(None, description="The claim's device, when a claim gave it.")
    deleted: bool = Field(False, description="Its DEL succeeded: a retried DEL skips it.")

    @property
    def network_name(self) -> str:
        """The CNI network name (the result cache key)."""
        return str(self.conflist.get("name", ""))

    def failed(self, err: CNIError) -> CNIError:
        """`err` (same class, code and details), its message saying which attachment failed."""
        return type(err)(f"network {self.network} on {self.ifname}: {err.msg}", err.details)


class Plan(Model):
    kind: str = KIND
    format: int = FORMAT
    container_id: str = Field(alias="containerID")
    netns: str = ""
    pod_namespace: str = Field("", alias="podNamespace")
    pod_name: str = Field("", alias="podName")
    pod_uid: str = Field("", alias="podUID")
    cni_args: list[tuple[str, str]] = Field(default_factory=list, alias="cniArgs")
    attachments: list[PlannedAttachment]
    network_status: list[dict[str, Any]] | None = Field(
        None,
        alias="networkStatus",
        description="The status file written, as earlier versions recorded it; DEL now computes it.",
    )

    def pending(self) -> list[PlannedAttachment]:
        return [a for a in self.attachments if not a.deleted]


def new_plan(rt: RuntimeArgs, pod: Pod | None, attachments: list[PlannedAttachment]) -> Plan:
    """The plan of `attachments` for the container of `rt`; the pod's names from the API when it
    was found, else from CNI_ARGS."""
    args = PodArgs.from_rt(rt)
    return Plan(
        container_id=rt.container_id,
        netns=rt.netns,
        pod_namespace=pod.namespace if pod else args.namespace,
        pod_name=pod.name if pod else args.name,
        pod_uid=pod.uid if pod else args.uid,
        cni_args=list(rt.args),
        attachments=attachments,
    )


class CorruptPlan(Exception):
    """The file exists but is not a plan we wrote (damaged, truncated by a failing disk, foreign)."""


class PlanStore:
    """The plans under one `cniDir`; `info_dir` is where device-info copies are (for adopted plans)."""

    def __init__(self, directory: Path, info_dir: Path | None = None) -> None:
        self.dir = directory
        self.info_dir = info_dir or Path("/var/run/k8s.cni.cncf.io/devinfo/cni")

    def path(self, container_id: str) -> Path:
        """The plan's file: a container ID that is not one plain name never becomes a path."""
        if not is_valid_name(container_id):
            raise InvalidEnvironment(
                f"CNI_CONTAINERID {container_id!r} is invalid: it must match {NAME_PATTERN}"
            )
        return self.dir / container_id

    def exists(self, container_id: str) -> bool:
        return self.path(container_id).is_file()

    def save(self, plan: Plan) -> None:
        """As multus-cni's array (a plan without attachments, which multus-cni could not read, as ours)."""
        body = plan.model_dump(mode="json", by_alias=True)
        attachments = body.pop("attachments")
        if not attachments:
            data: Any = {"checksum": _checksum({**body, "attachments": []}), **body, "attachments": []}
        else:
            data = [scratch.element(att, att) for att in attachments]
            data[0][scratch.PLAN_KEY] = {
                "checksum": _checksum({"plan": body, "attachments": attachments}),
                **body,
            }
        write_atomic(
            self.path(plan.container_id), json.dumps(data).encode(), 0o600, durable=False, watched=False
        )

    def load(self, container_id: str, ifname: str = "eth0") -> Plan | None:
        """The plan; None when there is none; `CorruptPlan` when the file cannot be trusted.

        `ifname`: the cluster network's interface, for an array multus-cni wrote (its first
        delegate takes CNI_IFNAME); kubelet's is eth0.
        """
        path = self.path(container_id)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise CorruptPlan(f"{path}: {err}") from err
        try:
            if isinstance(data, list) and data and isinstance(data[0], dict) and scratch.PLAN_KEY in data[0]:
                return _ours(path, data)
            if isinstance(data, list) and data:
                planned = scratch.adopt(data, container_id, ifname, self.info_dir)
                return Plan.model_validate({"containerID": container_id, "attachments": planned})
            return _earlier(path, data)
        except (ValidationError, ValueError, KeyError, TypeError) as err:
            raise CorruptPlan(f"{path}: {err}") from err

    def remove(self, container_id: str) -> None:
        self.path(container_id).unlink(missing_ok=True)

    def container_ids(self) -> list[str]:
        """The containers that have a plan file (names of regular files that are container IDs)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if is_valid_name(n) and (self.dir / n).is_file())


def _ours(path: Path, data: list[Any]) -> Plan:
    header = dict(data[0][scratch.PLAN_KEY])
    checksum = header.pop("checksum", None)
    attachments = [item.get(scratch.KEY) if isinstance(item, dict) else None for item in data]
    if checksum != _checksum({"plan": header, "attachments": attachments}):
        raise CorruptPlan(f"{path}: checksum mismatch")
    return Plan.model_validate({**header, "attachments": attachments})


def _earlier(path: Path, data: Any) -> Plan:
    """A plan as earlier versions wrote it: one object of kind `pycniMultusPlan`."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise CorruptPlan(f"{path}: not a {KIND}")
    checksum = data.pop("checksum", None)
    if checksum != _checksum(data):
        raise CorruptPlan(f"{path}: checksum mismatch")
    return Plan.model_validate(data)


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
