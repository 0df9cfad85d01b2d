"""The NPWG device-info file for a PCI device (device-info spec 1.1.0, §4.2 and §5.1.2).

A CNI result has no place for device info beyond `interfaces[].pciID` (spec 1.1.0); the NPWG
channel is the file named by `runtimeConfig.CNIDeviceInfoFile`. When the meta-plugin copied the
device plugin's file there we leave it alone; when it is absent we write one. Multus reads it
into the pod's network-status and deletes it on DEL; we delete only a file we wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from pycni.net.device.record import write_atomic

SPEC_VERSION = "1.1.0"


def pci_info(pci_address: str, pf_address: str | None) -> dict[str, object]:
    pci: dict[str, str] = {"pci-address": pci_address}
    if pf_address:
        pci["pf-pci-address"] = pf_address
    return {"type": "pci", "version": SPEC_VERSION, "pci": pci}


def write_if_absent(path: str, info: dict[str, object]) -> bool:
    """Write `info` at `path` unless a file is there; True when we wrote it."""
    target = Path(path)
    if target.exists():
        return False
    write_atomic(target, json.dumps(info, sort_keys=True).encode(), 0o644)
    return True


def remove(path: str | None) -> None:
    if path:
        Path(path).unlink(missing_ok=True)
