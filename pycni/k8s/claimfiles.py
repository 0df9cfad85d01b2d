"""A ResourceClaim's device status as a file, for a node without an API server:
`<dir>/<namespace>/<claim>.json` holds `{"devices": [...]}`, the claim's `status.devices` as the
API would have it. Entries are merged by device as on the server, under a lock per namespace
(two pods sharing a claim write the same file), and DEL removes the entries it wrote, the file
with its last entry.
"""

from __future__ import annotations

import contextlib
import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pycni.cni import locks
from pycni.cni.errors import DecodingFailure
from pycni.cni.files import write_atomic
from pycni.k8s.claims import merge_devices, without_devices


def path(directory: Path, namespace: str, name: str) -> Path:
    return directory / namespace / f"{name}.json"


def read(file: Path) -> list[dict[str, Any]]:
    """The file's entries; none when there is no file."""
    try:
        value = json.loads(file.read_bytes())
    except FileNotFoundError:
        return []
    except ValueError as err:
        raise DecodingFailure(f"{file}: not valid JSON: {err}") from err
    devices = value.get("devices") if isinstance(value, dict) else None
    return [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []


def merge(directory: Path, namespace: str, name: str, entries: list[dict[str, Any]]) -> None:
    with _locked(directory, namespace):
        file = path(directory, namespace, name)
        _write(file, merge_devices(read(file), entries))


def remove(directory: Path, namespace: str, name: str, keys: set[tuple[Any, ...]]) -> None:
    """Drop the entries of `keys`; the file goes with its last entry, the directory with its last file."""
    folder = directory / namespace
    if not folder.is_dir():
        return
    with _locked(directory, namespace):
        file = path(directory, namespace, name)
        left = without_devices(read(file), keys)
        if left:
            _write(file, left)
        else:
            file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # other claims of the namespace still have files
            folder.rmdir()


def _write(file: Path, devices: list[dict[str, Any]]) -> None:
    """Not fsynced, as network-status: it describes running pods, none of which survive a crash."""
    write_atomic(file, json.dumps({"devices": devices}).encode() + b"\n", 0o600, durable=False)


def _locked(directory: Path, namespace: str) -> AbstractContextManager[None]:
    """The namespace's lock, beside its directory (which comes and goes with its files), with the
    deadline of every pycni lock: a holder that hangs makes the caller try again later."""
    lock = directory / f".{namespace}.lock"
    return locks.flock(lock, what=f"the claim status of namespace {namespace}", remove=True)
