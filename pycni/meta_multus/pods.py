"""Where a call learns about its pod: the source of Pods and NADs, the pod itself, its devices."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pycni.cni.errors import CNIError, InvalidEnvironment, TryAgainLater, UnknownContainer
from pycni.k8s.objects import is_dns_subdomain, is_namespace

if TYPE_CHECKING:
    from pycni.cni.runtime import RuntimeArgs
    from pycni.k8s.claims import ClaimSource
    from pycni.k8s.objects import Pod, PodSource
    from pycni.meta_multus.config import MultusConf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PodArgs:
    """The Kubernetes keys of CNI_ARGS."""

    namespace: str = ""
    name: str = ""
    infra_container_id: str = ""
    uid: str = ""

    @classmethod
    def from_rt(cls, rt: RuntimeArgs) -> PodArgs:
        return cls(
            rt.arg("K8S_POD_NAMESPACE") or "",
            rt.arg("K8S_POD_NAME") or "",
            rt.arg("K8S_POD_INFRA_CONTAINER_ID") or "",
            rt.arg("K8S_POD_UID") or "",
        )


def open_source(conf: MultusConf, rt: RuntimeArgs, *, records_only: bool = False) -> PodSource | None:
    """The API server when `kubeconfig` is set, else the manifest directory, else none.

    A manifest directory's parse is reused while no manifest changed (`manifest_cache`);
    `records_only`: the caller only removes records (status files), so nothing is looked at.
    """
    if conf.kubeconfig:
        from pycni.k8s.apiserver import ApiServer

        return ApiServer(conf.kubeconfig, rt.env)
    if conf.manifests and records_only:
        from pycni.k8s.manifests import ManifestSource

        return ManifestSource(Path(conf.manifests), conf.status_dir, conf.claim_status_dir)
    if conf.manifests:
        from pycni.meta_multus import manifest_cache

        return manifest_cache.source(Path(conf.manifests), conf.status_dir, conf.claim_status_dir)
    return None


def claim_source(source: PodSource | None) -> ClaimSource | None:
    """The ResourceClaims and ResourceSlices of the place the pods come from (none without one)."""
    from pycni.k8s.apiserver import ApiServer
    from pycni.k8s.manifests import ManifestSource

    if isinstance(source, ApiServer):
        from pycni.k8s.claimapi import ClaimApi

        return ClaimApi(source)
    return source if isinstance(source, ManifestSource) else None


def find_pod(source: PodSource | None, args: PodArgs, *, adding: bool) -> Pod | None:
    """The pod CNI_ARGS names; on ADD it must exist and be the same pod (UID) as the runtime's.

    Off ADD a missing or re-created pod is None: DEL then works from what it has on disk. The
    names come from CNI_ARGS and end up in URL paths and file names, so anything that is not a
    Kubernetes name is refused on ADD and means "no pod" otherwise.
    """
    if source is None or not args.name:
        return None
    if not is_dns_subdomain(args.name) or not is_namespace(args.namespace or "default"):
        if adding:
            raise InvalidEnvironment(
                f"CNI_ARGS K8S_POD_NAMESPACE={args.namespace!r} K8S_POD_NAME={args.name!r} "
                "is not a Kubernetes namespace and pod name"
            )
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


def devices(conf: MultusConf, pod: Pod | None, *, quiet: bool = False) -> dict[str, list[str]]:
    """The pod's devices per resource, from the kubelet; `quiet` (DEL) turns failure into none."""
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
