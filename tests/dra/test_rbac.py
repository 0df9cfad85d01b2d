"""deploy/kubernetes/rbac-dra-driver.yaml grants exactly what the DRA driver calls: the calls seen on
the wire by the API server stand-in over a driver's life (stale slices replaced, devices changing,
claims prepared and unprepared), and every lightkube call in pycni/k8s/resourceapi.py."""

from __future__ import annotations

import re
from pathlib import Path

from tests.dra.node import DRIVER, NODE, RESOURCE_API, DraNode
from tests.helpers.rbac import client_verbs, granted, route

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
    seen = {route(ROUTES, method, path.split("?")[0]) for method, path in dnode.api.cluster.requests}
    assert seen == granted(RBAC)


def test_the_client_module_uses_no_verb_beyond_the_rules() -> None:
    assert client_verbs(ROOT / "pycni" / "k8s" / "resourceapi.py") == {verb for _, _, verb in granted(RBAC)}
