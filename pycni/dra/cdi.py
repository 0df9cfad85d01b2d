"""The CDI spec of a prepared claim: what the container runtime adds to a container for each device.

One spec file per claim (`<cdi dir>/<driver>-vf_<claim uid>.json`, CDI's name for a transient
spec), kind `<driver>/vf`, one CDI device per claim and device (`<claim uid>-<device name>`), so two
claims never share a CDI name. Each device's edits give the environment sriov-network-device-plugin
gives: `PCIDEVICE_<PREFIX>_<RESOURCE>` holding the PCI addresses of the claim's devices of that
resource, comma-joined, with its `_INFO` JSON companion (so DPDK apps written for the device plugin
run unchanged), plus the device nodes of a VFIO or UIO device (`/dev/vfio/vfio` and
`/dev/vfio/<group>`). A runtime merges the edits of the devices it injects; the same variable
carries the same value in each.

Written atomically, mode 0644, without fsync: /var/run is tmpfs, and the driver writes a missing
spec again from its checkpoint when kubelet prepares the claim after a reboot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pycni.cni.files import write_atomic
from pycni.dra.devices import DraDevice
from pycni.k8s.pools.container import device_nodes, env_name, info_entry
from pycni.k8s.pools.membership import matching_selector

CDI_VERSION = "0.6.0"
CDI_CLASS = "vf"


def kind(driver: str) -> str:
    return f"{driver}/{CDI_CLASS}"


def device_id(driver: str, claim_uid: str, device: str) -> str:
    """The fully qualified CDI name kubelet hands to the runtime."""
    return f"{kind(driver)}={claim_uid}-{device}"


def spec_path(directory: Path, driver: str, claim_uid: str) -> Path:
    return directory / f"{driver}-{CDI_CLASS}_{claim_uid}.json"


def spec_uids(directory: Path, driver: str) -> set[str]:
    """The claims whose specs this driver has in `directory`."""
    prefix = f"{driver}-{CDI_CLASS}_"
    try:
        names = [p.name for p in directory.iterdir()]
    except FileNotFoundError:
        return set()
    return {n[len(prefix) : -len(".json")] for n in names if n.startswith(prefix) and n.endswith(".json")}


def build(driver: str, claim_uid: str, devices: Iterable[DraDevice]) -> dict[str, Any]:
    devices = list(devices)
    env = _environment(devices)
    entries = []
    for dev in devices:
        edits: dict[str, Any] = {"env": env[dev.pool.resource]}
        nodes = device_nodes(dev.device, _vhost_net(dev))
        if nodes:
            edits["deviceNodes"] = [
                {"path": n.container_path, "hostPath": n.host_path, "permissions": n.permissions}
                for n in nodes
            ]
        entries.append({"name": f"{claim_uid}-{dev.name}", "containerEdits": edits})
    return {"cdiVersion": CDI_VERSION, "kind": kind(driver), "devices": entries}


def _environment(devices: list[DraDevice]) -> dict[str, list[str]]:
    """Per resource: `PCIDEVICE_...=<addresses>` and `PCIDEVICE_..._INFO=<json>`, as the device plugin."""
    by_resource: dict[str, list[DraDevice]] = {}
    for dev in devices:
        by_resource.setdefault(dev.pool.resource, []).append(dev)
    out = {}
    for resource, members in by_resource.items():
        name = env_name(members[0].pool)
        info = {d.address: info_entry(d.pool, d.device, _vhost_net(d)) for d in members}
        out[resource] = [
            f"{name}={','.join(d.address for d in members)}",
            f"{name}_INFO={json.dumps(info, sort_keys=True, separators=(',', ':'))}",
        ]
    return out


def _vhost_net(dev: DraDevice) -> bool:
    sel = matching_selector(dev.pool.conf, dev.device)
    return bool(sel and sel.need_vhost_net)


def write(path: Path, spec: dict[str, Any]) -> None:
    # Shared with the runtime and other vendors' specs: a missing directory gets the default mode.
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(spec, sort_keys=True).encode(), 0o644, durable=False)


def read(path: Path) -> dict[str, Any] | None:
    """A spec this driver wrote, or None when it is missing or unreadable."""
    try:
        spec = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
