"""NPWG device-info files (device-info spec 1.1.0): the one place that names, builds, writes and
reads them, for the device plugin, the PCI plugins (host-device, sriov) and the meta-plugin.

The device plugin writes one file per allocatable device into `DP_DIR`
(`<resource>-<device ID>-device.json`, `/` → `-`). The meta-plugin copies the pod's file to the
path it gives a delegate as `runtimeConfig.CNIDeviceInfoFile` (`CNI_DIR/<ns>-<net>-<cid>_<ifname>`),
reports it in network-status and deletes it on DEL. A PCI plugin that finds that path empty
writes its own (and removes only a file it wrote). Standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pycni.cni.files import make_private_dirs, write_atomic

SPEC_VERSION = "1.1.0"
#: The device plugin's files, one per device it advertises (NPWG default).
DP_DIR = Path("/var/run/k8s.cni.cncf.io/devinfo/dp")
#: The files a meta-plugin hands its delegates, one per attachment (NPWG default).
CNI_DIR = Path("/var/run/k8s.cni.cncf.io/devinfo/cni")
VHOST_NET = "/dev/vhost-net"

DeviceInfo = dict[str, Any]


def pci_info(pci_address: str, pf_address: str | None = None, *, vhost_net: bool = False) -> DeviceInfo:
    """The document for a PCI function (spec §4.2): its address, its PF's, and vhost-net if mounted."""
    pci: dict[str, str] = {"pci-address": pci_address}
    if pf_address:
        pci["pf-pci-address"] = pf_address
    if vhost_net:
        pci["vhost-net"] = VHOST_NET
    return {"type": "pci", "version": SPEC_VERSION, "pci": pci}


def _safe(text: str) -> str:
    return text.replace("/", "-")


def dp_path(directory: Path, resource: str, device_id: str) -> Path:
    """Where the device plugin puts the file of `device_id` in pool `resource`."""
    return directory / f"{_safe(resource)}-{_safe(device_id)}-device.json"


def cni_path(directory: Path, namespace: str, network: str, container_id: str, ifname: str) -> Path:
    """Where a meta-plugin puts the file it hands the delegate of one attachment."""
    return directory / f"{_safe(namespace)}-{_safe(network)}-{container_id}_{ifname}"


def make_dir(directory: Path) -> None:
    """The device-info directory and any missing parent, 0700 (`Path.mkdir` applies its mode to
    the last one only): root's CNI plugins and the device plugin are the only readers."""
    make_private_dirs(directory)


def write(path: Path, info: DeviceInfo, mode: int = 0o444) -> None:
    """Write atomically; no fsync: these live on tmpfs and mean nothing after a reboot.

    The device plugin's own files are 0444 as the reference's (NPWG utils) are; copies handed
    to one attachment are 0600."""
    write_atomic(path, encode(info), mode, durable=False)


def encode(info: DeviceInfo) -> bytes:
    """A document as `write` puts it in its file."""
    return json.dumps(info, sort_keys=True).encode()


class WrittenFiles:
    """The device plugin's files as this process last wrote them (inode, size, change time).

    The device plugin answers every Allocate of a device with the same file: one still as
    written costs one `stat`; another is compared and, unless it holds exactly these bytes,
    written again. Replacing it on every call (temp file, exchange, unlink) was half of an
    Allocate's time, each system call a turn of the GIL for the other handlers. Every writer of
    these files renames into place, so a file replaced shows as a new inode; the directory is
    root's alone, so nothing rewrites one in place.
    """

    def __init__(self) -> None:
        self._written: dict[Path, tuple[int, int, int]] = {}

    def ensure(self, path: Path, data: bytes, mode: int = 0o444) -> None:
        """`data` (already `encode`d) at `path`."""
        identity = _identity(path)
        if identity is not None and self._written.get(path) == identity:
            return
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False  # missing or unreadable: written anew
        if not same:
            write_atomic(path, data, mode, durable=False)
        identity = _identity(path)
        if identity is not None:
            self._written[path] = identity


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_ctime_ns


def write_if_absent(path: Path, info: DeviceInfo) -> bool:
    """Write `info` at `path` unless a file is there (a meta-plugin's copy); True when we wrote it.

    0600 like every file a plugin writes: only the runtime's root processes read it."""
    if path.exists():
        return False
    write(path, info, 0o600)
    return True


def copy(source: Path, target: Path) -> bool:
    """A meta-plugin's copy of the device plugin's file for one attachment (0600); False if none."""
    info = read(source)
    if info is None:
        return False
    write(target, info, 0o600)
    return True


def read(path: Path) -> DeviceInfo | None:
    """The document at `path`; None when absent or not a JSON object (a reader never fails on it)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(path: Path | str | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def remove_pool(directory: Path, resource: str, keep: Iterable[str] = ()) -> int:
    """Remove the pool's files except those of the device IDs in `keep`; how many went."""
    prefix = _safe(resource) + "-"
    kept = {dp_path(directory, resource, d).name for d in keep}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    doomed = [n for n in names if n.startswith(prefix) and n.endswith("-device.json") and n not in kept]
    for name in doomed:
        (directory / name).unlink(missing_ok=True)
    return len(doomed)
