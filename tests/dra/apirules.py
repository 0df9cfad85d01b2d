"""What the real API server checks of a `resource.k8s.io/v1` object before it stores it, for the
stand-in: the Kubernetes 1.34 OpenAPI schema, strictly (kubernetes-validate), plus the rules the
schema cannot say (the resource API's validation): slice and attribute limits, names and value types.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate

from pycni.k8s.objects import DNS1123_LABEL, is_dns_subdomain

VERSION = "1.34.0"
C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
LABEL_NAME = re.compile(r"([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def schema_problem(obj: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return str(err).splitlines()[0]
    return None


def slice_problem(obj: dict[str, Any]) -> str | None:
    """Why the API server would refuse this ResourceSlice, or None."""
    problem = schema_problem(obj)
    if problem:
        return problem
    spec = obj["spec"]
    if not is_dns_subdomain(spec.get("driver", "")):
        return "spec.driver: not a DNS subdomain"
    pool = spec.get("pool") or {}
    if not pool.get("name") or pool.get("resourceSliceCount", 0) < 1 or pool.get("generation", -1) < 0:
        return "spec.pool: name, generation >= 0 and resourceSliceCount > 0 are required"
    devices = spec.get("devices") or []
    tainted = any(d.get("taints") for d in devices)
    limit = 64 if tainted else 128
    if len(devices) > limit:
        return f"spec.devices: {len(devices)} devices, more than {limit}"
    names = [d["name"] for d in devices]
    if len(set(names)) != len(names):
        return "spec.devices: duplicate device names"
    for device in devices:
        problem = device_problem(device)
        if problem:
            return f"spec.devices[{device['name']}]: {problem}"
    return None


def device_problem(device: dict[str, Any]) -> str | None:
    if not DNS1123_LABEL.fullmatch(device["name"]) or len(device["name"]) > 63:
        return "name: not a DNS label"
    attributes = device.get("attributes") or {}
    if len(attributes) + len(device.get("capacity") or {}) > 32:
        return "more than 32 attributes and capacities"
    for name, value in attributes.items():
        domain, _, ident = name.rpartition("/")
        if (domain and not is_dns_subdomain(domain)) or not C_IDENTIFIER.fullmatch(ident):
            return f"attribute {name!r}: not a qualified name"
        if len(value) != 1 or next(iter(value)) not in ("int", "bool", "string", "version"):
            return f"attribute {name!r}: exactly one of int, bool, string, version"
        if "string" in value and len(value["string"]) > 64:
            return f"attribute {name!r}: string longer than 64"
    taints = device.get("taints") or []
    if len(taints) > 4:
        return "more than 4 taints"
    for taint in taints:
        if not LABEL_NAME.fullmatch(taint["key"]) or taint["effect"] not in ("NoSchedule", "NoExecute"):
            return f"taint {taint}: bad key or effect"
    return None
