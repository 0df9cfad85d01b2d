"""What a container gets for its devices: env, DeviceSpecs or CDI names; and a pool's CDI spec.

Answers as sriov-network-device-plugin does: `PCIDEVICE_<PREFIX>_<RESOURCE>` (comma-joined PCI
addresses) with its `_INFO` JSON companion, and each device's nodes; the pieces (env name, `_INFO`
entry, device nodes) are `pycni.k8s.pools.container`'s, shared with the DRA driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from pycni.hw.discovery import Device
from pycni.k8s.pools.container import DeviceNode, device_nodes, env_name, info_entry
from pycni.k8s.pools.membership import Pool, matching_selector

CDI_CLASS = "net-pci"


@dataclass
class ContainerAllocation:
    envs: dict[str, str] = field(default_factory=dict)
    devices: list[DeviceNode] = field(default_factory=list)
    cdi_devices: list[str] = field(default_factory=list)


def allocate(pool: Pool, devices: Iterable[Device], use_cdi: bool = False) -> ContainerAllocation:
    """The response for one container; the caller has checked that every device is in the pool."""
    out = ContainerAllocation()
    info: dict[str, object] = {}
    seen: set[str] = set()
    ids = []
    for dev in devices:
        ids.append(dev.address)
        sel = matching_selector(pool.conf, dev)
        vhost = bool(sel and sel.need_vhost_net)
        info[dev.address] = info_entry(pool, dev, vhost)
        if use_cdi:
            out.cdi_devices.append(f"{pool.prefix}/{CDI_CLASS}={dev.address}")
            continue
        for node in device_nodes(dev, vhost):
            if node.host_path not in seen:
                seen.add(node.host_path)
                out.devices.append(node)
    name = env_name(pool)
    out.envs[name] = ",".join(ids)
    out.envs[f"{name}_INFO"] = json.dumps(info, sort_keys=True, separators=(",", ":"))
    return out


def cdi_spec(pool: Pool, devices: Iterable[Device]) -> dict[str, object]:
    """A CDI spec (kind `<prefix>/net-pci`, one device per PCI address) for container runtimes."""
    entries = []
    for dev in devices:
        sel = matching_selector(pool.conf, dev)
        nodes = device_nodes(dev, bool(sel and sel.need_vhost_net))
        edits: dict[str, object] = {"env": [f"{env_name(pool)}_{_env_safe(dev.address)}={dev.address}"]}
        if nodes:
            edits["deviceNodes"] = [
                {"path": n.container_path, "hostPath": n.host_path, "permissions": n.permissions}
                for n in nodes
            ]
        entries.append({"name": dev.address, "containerEdits": edits})
    return {"cdiVersion": "0.6.0", "kind": f"{pool.prefix}/{CDI_CLASS}", "devices": entries}


def _env_safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).upper()
