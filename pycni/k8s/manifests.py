"""Pods and NADs from a directory of ordinary Kubernetes manifests: a node without an API server.

Every `*.yaml`, `*.yml` and `*.json` file in the directory is read (multi-document YAML and
`kind: List` included), in the API's own schema, so the same manifests can later be applied
to a cluster unchanged. A pod's network-status goes to `<status dir>/<namespace>/<pod>.json`
instead of an annotation; events go to the log. The directory is read once per request.
"""

from __future__ import annotations

import contextlib
import json
import logging
from functools import cached_property
from pathlib import Path
from typing import Any

from pycni.cni.errors import DecodingFailure, IOFailure
from pycni.cni.files import write_atomic
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


class ManifestSource:
    """A `PodSource` over a manifest directory; network-status files under `status_dir`."""

    def __init__(self, directory: Path, status_dir: Path) -> None:
        self.directory = directory
        self.status_dir = status_dir

    @cached_property
    def _objects(
        self,
    ) -> tuple[dict[tuple[str, str], Pod], dict[tuple[str, str], NetworkAttachmentDefinition]]:
        pods: dict[tuple[str, str], Pod] = {}
        nads: dict[tuple[str, str], NetworkAttachmentDefinition] = {}
        for path, obj in _documents(self.directory):
            kind, api_version, meta = obj.get("kind"), obj.get("apiVersion"), obj.get("metadata")
            where = f"{path} ({kind} {meta.get('name', '?') if isinstance(meta, dict) else '?'})"
            if kind == "Pod" and api_version == POD_API_VERSION:
                pod = parse_pod(obj, where)
                pods[pod.namespace, pod.name] = pod
            elif kind == NAD_KIND and api_version == NAD_API_VERSION:
                nad = parse_nad(obj, where)
                nads[nad.namespace, nad.name] = nad
        return pods, nads

    def pod(self, namespace: str, name: str, *, wait: bool = False) -> Pod | None:
        return self._objects[0].get((namespace, name))

    def nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
        return self._objects[1].get((namespace, name))

    def status_path(self, pod: Pod) -> Path:
        return self.status_dir / pod.namespace / f"{pod.name}.json"

    def write_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None:
        """0600 in 0700 directories, the status directory included (not only the namespace's).

        Not fsynced: the status describes a running pod, and no pod survives a crash of the
        node (the API server's copy is a PATCH, also not a durable local write). An fsync here
        was one of the five disk flushes of every pod's multus ADD and DEL.
        """
        self.status_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.status_path(pod), _encode(status), 0o600, durable=False)

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

    def event(self, pod: Pod, reason: str, message: str) -> None:
        log.info("event %s on pod %s/%s: %s", reason, pod.namespace, pod.name, message)


def _encode(status: list[dict[str, Any]]) -> bytes:
    return json.dumps(status, indent=2).encode() + b"\n"


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
