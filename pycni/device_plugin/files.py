"""Files the daemon leaves for others: NPWG device-info files and CDI specs, written atomically.

A reader (Multus, a CNI plugin, the container runtime) must never see half a file, so every write
is a temp file renamed over the target in the same directory. No fsync: these files live under
/var/run (tmpfs) and mean nothing after a reboot, and an fsync per device would dominate Allocate.
Device-info files are mode 0444 and named as the spec says, `<resource with / as ->-<device id>-device.json`;
we remove ours when a pool goes away and on shutdown.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def write_atomic(path: Path, data: bytes, mode: int = 0o444) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def devinfo_path(directory: Path, resource: str, device_id: str) -> Path:
    return directory / f"{resource.replace('/', '-')}-{device_id.replace('/', '-')}-device.json"


def write_devinfo(directory: Path, resource: str, device_id: str, info: dict[str, object]) -> Path:
    path = devinfo_path(directory, resource, device_id)
    write_atomic(path, json.dumps(info, sort_keys=True).encode())
    return path


def remove_devinfo(directory: Path, resource: str, keep: Iterable[str] = ()) -> int:
    """Removes the pool's device-info files except those of `keep`; returns how many went."""
    prefix = resource.replace("/", "-") + "-"
    kept = {devinfo_path(directory, resource, d).name for d in keep}
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(prefix) and name.endswith("-device.json") and name not in kept:
            (directory / name).unlink(missing_ok=True)
            removed += 1
    return removed


def cdi_spec_path(directory: Path, resource: str) -> Path:
    return directory / f"pycni-{resource.replace('/', '-')}.json"


def write_cdi_spec(directory: Path, resource: str, spec: dict[str, object]) -> None:
    write_atomic(
        cdi_spec_path(directory, resource), json.dumps(spec, sort_keys=True, indent=1).encode(), 0o644
    )


def remove_cdi_spec(directory: Path, resource: str) -> None:
    cdi_spec_path(directory, resource).unlink(missing_ok=True)
