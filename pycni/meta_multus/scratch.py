"""multus-cni's scratch cache, `<cniDir>/<containerID>`: the form our plans are written in.

multus-cni saves the pod's delegates there before running any (`saveDelegates`): a JSON array
of its `DelegateNetConf`, the cluster network first, each with `Conf` (single config) or
`ConfList` (its `plugins` make it a list), `Name` (the network-status name), `ifnameRequest`,
`deviceID`, `resourceName`, the default-route fields and `Bytes`, the config as run (base64).
Its DEL reads that array alone (no API server needed): every delegate is DELeted in reverse,
on `ifnameRequest`, else CNI_IFNAME for the first, else `net<index>`, with its result cache
under `<cniDir>/results`; then the file goes.

Our plan is written as that array, every attachment with `ifnameRequest` set, and what only we
use beside multus-cni's keys, which it ignores: `pycni` per attachment (our `PlannedAttachment`)
and `pycniPlan` on the first (the pod's names, CNI_ARGS, and a checksum over everything of
ours). So multus-cni's DEL on a rolled-back node tears down pods we attached, and
our DEL reads an array multus-cni wrote (`adopt`) as a plan, for pods it attached.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from pycni.hw import devinfo

KEY = "pycni"
PLAN_KEY = "pycniPlan"


def element(att: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """One `DelegateNetConf` for a planned attachment (`att`: its JSON by alias), with ours inside."""
    conflist = att["conflist"]
    head = {k: conflist[k] for k in ("cniVersion", "name") if k in conflist}
    plugins = [_netconf(p) for p in conflist.get("plugins", [])]
    out: dict[str, Any] = {
        "Conf": {**head, "ipam": {}, "dns": {}},
        "ConfList": {**head, "plugins": plugins},
        "Name": att["network"],
        "ifnameRequest": att["ifname"],
        "IsFilterV4Gateway": 4 in att.get("filterFamilies", []),
        "IsFilterV6Gateway": 6 in att.get("filterFamilies", []),
        "Bytes": base64.b64encode(json.dumps(conflist).encode()).decode(),
        KEY: ours,
    }
    if att.get("gateways"):
        out["default-route"] = att["gateways"]
    for key, value in (("deviceID", att.get("deviceID")), ("resourceName", att.get("resourceName"))):
        if value:
            out[key] = value
    caps = att.get("capabilityArgs") or {}
    if caps.get("mac"):
        out["macRequest"] = caps["mac"]
    if caps.get("ips"):
        out["ipRequest"] = caps["ips"]
    return out


def _netconf(plugin: Any) -> dict[str, Any]:
    """A plugin config as multus-cni's `types.NetConf` keeps it (its `ConfList.plugins`)."""
    if not isinstance(plugin, dict):
        return {}
    ipam = plugin.get("ipam")
    out = {k: plugin[k] for k in ("cniVersion", "name", "type", "capabilities") if k in plugin}
    out["ipam"] = {"type": ipam["type"]} if isinstance(ipam, dict) and "type" in ipam else {}
    out["dns"] = plugin["dns"] if isinstance(plugin.get("dns"), dict) else {}
    return out


def adopt(elements: list[Any], container_id: str, ifname: str, info_dir: Path) -> list[dict[str, Any]]:
    """multus-cni's delegates as our planned attachments (their JSON by alias), in order.

    Raises ValueError for an array that is not multus-cni's.
    """
    planned = []
    for index, item in enumerate(elements):
        if not isinstance(item, dict) or not isinstance(item.get("Bytes"), str):
            raise ValueError(f"delegate {index} has no config")
        try:
            config = json.loads(base64.b64decode(item["Bytes"], validate=True))
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"delegate {index}: {err}") from err
        if not isinstance(config, dict):
            raise ValueError(f"delegate {index}: its config is not an object")
        conflist = config if isinstance(config.get("plugins"), list) else _as_list(config)
        name = str(item.get("Name") or conflist.get("name", ""))
        att_ifname = str(item.get("ifnameRequest") or (ifname if index == 0 else f"net{index}"))
        planned.append(_attachment(item, conflist, name, att_ifname, index == 0, container_id, info_dir))
    return planned


def _as_list(config: dict[str, Any]) -> dict[str, Any]:
    """A single config as the network list libcni runs it as (its name and version on the list)."""
    return {
        k: v for k, v in (("cniVersion", config.get("cniVersion")), ("name", config.get("name"))) if v
    } | {"plugins": [config]}


def _attachment(
    item: dict[str, Any],
    conflist: dict[str, Any],
    name: str,
    ifname: str,
    default: bool,
    container_id: str,
    info_dir: Path,
) -> dict[str, Any]:
    caps: dict[str, Any] = {}
    if item.get("macRequest"):
        caps["mac"] = item["macRequest"]
    if item.get("ipRequest"):
        caps["ips"] = item["ipRequest"]
    device_id = str(item.get("deviceID") or "")
    info_file = ""
    if device_id:
        caps["deviceID"] = device_id
        namespace, _, network = name.rpartition("/")
        path = devinfo.cni_path(info_dir, namespace, network, container_id, ifname)
        if path.exists():
            info_file = str(path)
            caps["CNIDeviceInfoFile"] = info_file
    return {
        "network": name,
        "ifname": ifname,
        "default": default,
        "conflist": conflist,
        "capabilityArgs": caps,
        "resourceName": str(item.get("resourceName") or ""),
        "deviceID": device_id,
        "deviceInfoFile": info_file,
    }
