"""deploy/kubernetes/rbac-dra-driver.yaml grants exactly what the DRA driver calls: the calls seen on
the wire by the API server stand-in over a driver's life (stale slices replaced, devices changing,
claims prepared and unprepared), and every lightkube call in pycni/k8s/resourceapi.py."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.dra.node import DRIVER, NODE, RESOURCE_API, DraNode

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "deploy" / "kubernetes" / "rbac-dra-driver.yaml"
GROUP = r"/apis/resource\.k8s\.io/v1"
ROUTES = [
    (re.compile(rf"^GET {GROUP}/resourceslices$"), ("resource.k8s.io", "resourceslices", "list")),
    (re.compile(rf"^POST {GROUP}/resourceslices$"), ("resource.k8s.io", "resourceslices", "create")),
    (re.compile(rf"^PUT {GROUP}/resourceslices/[^/]+$"), ("resource.k8s.io", "resourceslices", "update")),
    (re.compile(rf"^DELETE {GROUP}/resourceslices/[^/]+$"), ("resource.k8s.io", "resourceslices", "delete")),
    (
        re.compile(rf"^GET {GROUP}/namespaces/[^/]+/resourceclaims/[^/]+$"),
        ("resource.k8s.io", "resourceclaims", "get"),
    ),
    (re.compile(r"^GET /api/v1/nodes/[^/]+$"), ("", "nodes", "get")),
]
CLIENT_VERBS = {"get": "get", "list": "list", "watch": "watch", "create": "create", "replace": "update",
                "patch": "patch", "delete": "delete", "apply": "patch"}  # fmt: skip


def granted() -> set[tuple[str, str, str]]:
    role = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d["kind"] == "ClusterRole")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def route(method: str, path: str) -> tuple[str, str, str]:
    line = f"{method} {path}"
    for pattern, rule in ROUTES:
        if pattern.match(line):
            return rule
    raise AssertionError(f"the driver made a call no rule covers: {line}")


def test_rbac_rules_are_exactly_the_calls_made(dnode: DraNode) -> None:
    pool = {"name": NODE, "generation": 1, "resourceSliceCount": 1}
    stale = {"apiVersion": RESOURCE_API, "kind": "ResourceSlice", "metadata": {"name": "stale"},
             "spec": {"driver": DRIVER, "nodeName": NODE, "pool": pool, "devices": []}}  # fmt: skip
    dnode.api.cluster.store.add("resourceslices", stale)
    dnode.start()  # GET node, list, DELETE the stale slice, POST
    dnode.hw.sysfs.remove_vf(dnode.hw.pfs["ens1f0"], 7)
    dnode.wait_pool(15)  # PUT
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    dnode.kubelet.prepare(DRIVER, [("default", "web", uid)])  # GET claim
    dnode.kubelet.unprepare(DRIVER, [("default", "web", uid)])  # nothing
    seen = {route(method, path.split("?")[0]) for method, path in dnode.api.cluster.requests}
    assert seen == granted()


def test_the_client_module_uses_no_verb_beyond_the_rules() -> None:
    source = (ROOT / "pycni" / "k8s" / "resourceapi.py").read_text()
    used = set(re.findall(r"\b(?:client|c)\.(get|list|watch|create|replace|patch|delete|apply)\(", source))
    assert {CLIENT_VERBS[m] for m in used} == {verb for _, _, verb in granted()}
