"""ResourceSlices as the API takes them: the node's devices split into slices of one pool.

Pure functions, so the layout rules are tested without an API server:
- one pool per node, named after the node; every slice names the driver and the node and is owned
  by the Node object (garbage-collected with it);
- at most 128 devices a slice, 64 in a slice where a device carries a taint (the API's limits);
- an unhealthy device stays listed, with `healthy: false` and a `NoSchedule` taint
  `<driver>/unhealthy`, so the scheduler stops choosing it where device taints are enabled and a
  selector can exclude it everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycni.dra.devices import DraDevice, attributes
from pycni.k8s.resourceapi import API_VERSION

MAX_DEVICES = 128
MAX_DEVICES_WITH_TAINTS = 64

#: A slice's devices, in the API's JSON.
Chunk = list[dict[str, Any]]


def unhealthy_taint(driver: str) -> dict[str, str]:
    return {"key": f"{driver}/unhealthy", "effect": "NoSchedule"}


def device_entry(dev: DraDevice, driver: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": dev.name, "attributes": attributes(dev)}
    if not dev.healthy:
        entry["taints"] = [unhealthy_taint(driver)]
    return entry


def chunks(entries: Iterable[dict[str, Any]]) -> list[Chunk]:
    """Devices in order, cut into slices that respect the per-slice limits."""
    out: list[Chunk] = []
    current: Chunk = []
    tainted = False
    for entry in entries:
        with_this = tainted or bool(entry.get("taints"))
        if current and len(current) >= (MAX_DEVICES_WITH_TAINTS if with_this else MAX_DEVICES):
            out.append(current)
            current, with_this = [], bool(entry.get("taints"))
        current.append(entry)
        tainted = with_this
    if current:
        out.append(current)
    return out


def slice_body(
    driver: str, node: str, node_uid: str, generation: int, count: int, devices: Chunk
) -> dict[str, Any]:
    """A new slice (the server names it from `generateName`); an update adds name and resourceVersion."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ResourceSlice",
        "metadata": {
            "generateName": f"{node}-{driver}-",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": True}
            ],
        },
        "spec": {
            "driver": driver,
            "nodeName": node,
            "pool": {"name": node, "generation": generation, "resourceSliceCount": count},
            "devices": devices,
        },
    }


def generation_of(obj: dict[str, Any]) -> int:
    try:
        return int(obj["spec"]["pool"]["generation"])
    except (KeyError, TypeError, ValueError):
        return 0
