"""Pods, NADs, ResourceClaims and ResourceSlices from a directory of ordinary Kubernetes
manifests: a node without an API server.

Every `*.yaml`, `*.yml` and `*.json` file in the directory is read (multi-document YAML and
`kind: List` included), in the API's own schema, so the same manifests can later be applied
to a cluster unchanged. A pod's network-status goes to `<status dir>/<namespace>/<pod>.json`
instead of an annotation, a claim's device status to `<claim status dir>/<namespace>/<claim>.json`
(`pycni.k8s.claimfiles`); events go to the log. The directory is read once per request.
"""

from __future__ import annotations

import contextlib
import json
import logging
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from pycni.cni.errors import DecodingFailure, IOFailure
from pycni.cni.files import write_atomic
from pycni.k8s import claimfiles, claims
from pycni.k8s.claims import DeviceResult, ResourceClaim, ResourceSlice
from pycni.k8s.objects import (
    NAD_GROUP,
    NAD_KIND,
    NAD_VERSION,
    NetworkAttachmentDefinition,
    Pod,
    parse_nad,
    parse_pod,
)

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
POD_API_VERSION = "v1"
NAD_API_VERSION = f"{NAD_GROUP}/{NAD_VERSION}"


class _Objects(NamedTuple):
    pods: dict[tuple[str, str], Pod]
    nads: dict[tuple[str, str], NetworkAttachmentDefinition]
    claims: dict[tuple[str, str], ResourceClaim]
    slices: list[ResourceSlice]


class ManifestSource:
    """A `PodSource` (and its `ClaimSource`) over a manifest directory; network-status files under
    `status_dir`, claims' device status under `claim_status_dir` (default: `claim-status` beside it)."""

    status_kept_apart = True

    def __init__(self, directory: Path, status_dir: Path, claim_status_dir: Path | None = None) -> None:
        self.directory = directory
        self.status_dir = status_dir
        self.claim_status_dir = claim_status_dir or status_dir.parent / "claim-status"

    @cached_property
    def _objects(self) -> _Objects:
        found = _Objects({}, {}, {}, [])
        for path, obj in _documents(self.directory):
            kind, api_version, meta = obj.get("kind"), obj.get("apiVersion"), obj.get("metadata")
            where = f"{path} ({kind} {meta.get('name', '?') if isinstance(meta, dict) else '?'})"
            if kind == "Pod" and api_version == POD_API_VERSION:
                pod = parse_pod(obj, where)
                found.pods[pod.namespace, pod.name] = pod
            elif kind == NAD_KIND and api_version == NAD_API_VERSION:
                nad = parse_nad(obj, where)
                found.nads[nad.namespace, nad.name] = nad
            elif kind == "ResourceClaim" and api_version == claims.GROUP_VERSION:
                claim = claims.parse_claim(obj, where)
                found.claims[claim.metadata.namespace, claim.metadata.name] = claim
            elif kind == "ResourceSlice" and api_version == claims.GROUP_VERSION:
                found.slices.append(claims.parse_slice(obj, where))
        return found

    def pod(self, namespace: str, name: str, *, wait: bool = False) -> Pod | None:
        return self._objects.pods.get((namespace, name))

    def nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
        return self._objects.nads.get((namespace, name))

    def status_path(self, pod: Pod) -> Path:
        return self.status_dir / pod.namespace / f"{pod.name}.json"

    def write_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """0600 in 0700 directories, the status directory included (not only the namespace's).

        Not fsynced: the status describes a running pod, and no pod survives a crash of the
        node (the API server's copy is a PATCH, also not a durable local write). An fsync here
        was one of the five disk flushes of every pod's multus ADD and DEL.
        """
        self.status_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.status_path(pod), _encode(status), 0o600, durable=False, watched=False)

    def forget_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """Remove the file only while it still holds what this attachment wrote (a newer
        sandbox of the same pod may have replaced it)."""
        path = self.status_path(pod)
        try:
            if path.read_bytes() == _encode(status):
                path.unlink()
        except FileNotFoundError:
            return
        with contextlib.suppress(OSError):  # other pods of the namespace still have files
            path.parent.rmdir()

    # -- the ClaimSource interface ---------------------------------------------------------------
    def resource_claim(self, namespace: str, name: str) -> ResourceClaim | None:
        return self._objects.claims.get((namespace, name))

    def resource_slices(self, driver: str) -> list[ResourceSlice]:
        return [s for s in self._objects.slices if s.spec.driver == driver]

    def write_claim_devices(self, claim: ResourceClaim, entries: list[dict[str, Any]]) -> None:
        claimfiles.merge(self.claim_status_dir, claim.metadata.namespace, claim.metadata.name, entries)

    def forget_claim_devices(self, namespace: str, name: str, results: list[DeviceResult]) -> None:
        keys = {claims.entry_key(r) for r in results}
        claimfiles.remove(self.claim_status_dir, namespace, name, keys)

    def event(self, pod: Pod, reason: str, message: str, *, warning: bool = False) -> None:
        level = logging.WARNING if warning else logging.INFO
        log.log(level, "event %s on pod %s/%s: %s", reason, pod.namespace, pod.name, message)


def _encode(status: list[dict[str, Any]]) -> bytes:
    return json.dumps(status).encode() + b"\n"


def _documents(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every object in the directory's manifest files, `kind: List` items unpacked, sorted by file."""
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file())
    except OSError as err:
        raise IOFailure(f"cannot read the manifests directory {directory}: {err.strerror}") from err
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        for doc in _load(path):
            kind = doc.get("kind")
            items = doc.get("items") if isinstance(kind, str) and kind.endswith("List") else None
            for obj in items if isinstance(items, list) else [doc]:
                if isinstance(obj, dict):
                    found.append((path, obj))
    return found


def _load(path: Path) -> list[dict[str, Any]]:
    """The file's documents; bad UTF-8 or nesting too deep to decode is a decoding error."""
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        return []  # removed since the directory was listed: as if it had not been there
    except OSError as err:
        raise IOFailure(f"cannot read the manifest {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise DecodingFailure(f"{path}: not UTF-8: {err}") from err
    try:
        docs = _parse(path, text)
    except RecursionError:
        raise DecodingFailure(f"{path}: nested too deeply") from None
    return [d for d in docs if isinstance(d, dict)]


def _parse(path: Path, text: str) -> list[Any]:
    if path.suffix == ".json":
        try:
            return [json.loads(text)]
        except ValueError as err:
            raise DecodingFailure(f"{path}: not valid JSON: {err}") from err
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built with it
    try:
        return list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as err:
        raise DecodingFailure(f"{path}: not valid YAML: {err}") from err
