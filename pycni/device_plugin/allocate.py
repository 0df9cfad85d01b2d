"""What a container gets for its devices: env, DeviceSpecs or CDI names; and a pool's CDI spec.

Answers as sriov-network-device-plugin does: `PCIDEVICE_<PREFIX>_<RESOURCE>` (comma-joined PCI
addresses) with its `_INFO` JSON companion, and each device's nodes; the pieces (env name, `_INFO`
entry, device nodes) are `pycni.k8s.pools.container`'s, shared with the DRA driver.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pycni.hw.devinfo import dp_path, encode, pci_info
from pycni.hw.discovery import Device
from pycni.k8s.pools.container import DeviceNode, device_nodes, env_name, info_entry
from pycni.k8s.pools.membership import Pool, matching_selector

CDI_CLASS = "net-pci"


@dataclass
class ContainerAllocation:
    envs: dict[str, str] = field(default_factory=dict)
    devices: list[DeviceNode] = field(default_factory=list)
    cdi_devices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeviceAnswer:
    """What Allocate gives for one device, the same on every call until the pool changes."""

    address: str
    #: The device's member of the `_INFO` env, already encoded: `"<pci>":{...}`.
    info_member: str
    nodes: tuple[DeviceNode, ...]
    cdi_name: str
    devinfo_path: Path
    devinfo_data: bytes


class Answers:
    """A pool's answers per device, built when the pool changes so that an Allocate only looks
    them up and joins them: with 32 Allocates in flight on one interpreter, every microsecond
    and system call of a handler is a turn of the GIL the others wait for."""

    def __init__(self, pool: Pool, devices: Iterable[Device], devinfo_dir: Path) -> None:
        self.env = env_name(pool)
        self.by_id = {dev.address: _answer(pool, dev, devinfo_dir) for dev in devices}

    def container(self, ids: Iterable[str], use_cdi: bool = False) -> ContainerAllocation:
        """The response for one container; the caller has checked that every ID is known."""
        answers = [self.by_id[i] for i in ids]
        out = ContainerAllocation()
        if use_cdi:
            out.cdi_devices = [a.cdi_name for a in answers]
        else:
            seen: set[str] = set()
            for node in (n for a in answers for n in a.nodes):
                if node.host_path not in seen:
                    seen.add(node.host_path)
                    out.devices.append(node)
        members = {a.address: a.info_member for a in answers}
        out.envs[self.env] = ",".join(a.address for a in answers)
        out.envs[f"{self.env}_INFO"] = "{" + ",".join(members[k] for k in sorted(members)) + "}"
        return out


def _answer(pool: Pool, dev: Device, devinfo_dir: Path) -> DeviceAnswer:
    sel = matching_selector(pool.conf, dev)
    vhost = bool(sel and sel.need_vhost_net)
    info = pci_info(dev.address, dev.pf_address, vhost_net=vhost)
    return DeviceAnswer(
        address=dev.address,
        info_member=_compact({dev.address: info_entry(pool, dev, vhost)})[1:-1],
        nodes=tuple(device_nodes(dev, vhost)),
        cdi_name=f"{pool.prefix}/{CDI_CLASS}={dev.address}",
        devinfo_path=dp_path(devinfo_dir, pool.resource, dev.address),
        devinfo_data=encode(info),
    )


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


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
