"""deploy/kubernetes/rbac.yaml grants exactly what multus calls: the calls seen on the wire by the
API server stand-in over ADD (a claimed device among the networks), a status write with a
conflict, events, the claim's network data, DEL and a rebuilt DEL."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.fake_sysfs import FakeVf
from tests.helpers.rbac import client_verbs, granted, route
from tests.meta_multus import claims
from tests.meta_multus.apiserver import FakeApiServer
from tests.meta_multus.helpers import MultusNode, nad_manifest
from tests.meta_multus.test_apiserver import populate

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rbac.yaml"
#: (method, path) as the API server sees it -> (API group, resource, verb) as RBAC names it.
ROUTES = [
    (re.compile(r"^GET /api/v1/namespaces/[^/]+/pods/[^/]+$"), ("", "pods", "get")),
    (re.compile(r"^PUT /api/v1/namespaces/[^/]+/pods/[^/]+/status$"), ("", "pods/status", "update")),
    (re.compile(r"^POST /api/v1/namespaces/[^/]+/events$"), ("", "events", "create")),
    (
        re.compile(r"^GET /apis/k8s.cni.cncf.io/v1/namespaces/[^/]+/network-attachment-definitions/[^/]+$"),
        ("k8s.cni.cncf.io", "network-attachment-definitions", "get"),
    ),
    (
        re.compile(r"^GET /apis/resource.k8s.io/v1/namespaces/[^/]+/resourceclaims/[^/]+$"),
        ("resource.k8s.io", "resourceclaims", "get"),
    ),
    (
        re.compile(r"^GET /apis/resource.k8s.io/v1/resourceslices$"),
        ("resource.k8s.io", "resourceslices", "list"),
    ),
    (
        re.compile(r"^PUT /apis/resource.k8s.io/v1/namespaces/[^/]+/resourceclaims/[^/]+/status$"),
        ("resource.k8s.io", "resourceclaims/status", "update"),
    ),
]


def with_a_claim(node: MultusNode, api: FakeApiServer) -> None:
    """Pod `web` also selects `claimed`, whose device is its claim's (the stub takes any deviceID)."""
    vf = FakeVf("0000:3b:02.0", 0, "0000:3b:00.0", "ens1f0", "iavf", "ens1f0v0", 0, 100)
    claims.serve(api.cluster)
    api.cluster.store.add("resourceslices", claims.slice_manifest([vf]))
    api.cluster.store.add("resourceclaims", claims.claim_manifest("vfs", [vf]))
    api.cluster.add(nad_manifest("claimed", node.stub("claimed"), resource=f"net/{claims.REQUEST}"))
    pod = api.cluster.pods["default", "web"]
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "blue,claimed"
    pod["spec"]["resourceClaims"] = [{"name": "net", "resourceClaimName": "vfs"}]


def test_rbac_rules_are_exactly_the_calls_made(mnode: MultusNode, api: FakeApiServer) -> None:
    populate(mnode, api.cluster)
    with_a_claim(mnode, api)
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web").ok()  # GET pod, NADs; PUT status (409); events
    assert [c["conf"]["deviceID"] for c in mnode.stub_calls()] == ["0000:3b:02.0"]
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web", container_id="again").ok()
    for plan in mnode.plans():
        (mnode.cni_dir / plan).unlink()  # a DEL without its plan rebuilds it from the API
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web", container_id="again").ok()
    seen = {route(ROUTES, method, path.split("?")[0]) for method, path in api.cluster.requests}
    assert seen == granted(RBAC)


def test_the_client_modules_use_no_verb_beyond_the_rules() -> None:
    """Every lightkube call in pycni/k8s/apiserver.py and claimapi.py maps to a granted verb."""
    k8s = Path(__file__).resolve().parents[2] / "pycni" / "k8s"
    used = client_verbs(k8s / "apiserver.py") | client_verbs(k8s / "claimapi.py")
    assert used == {verb for _, _, verb in granted(RBAC)}
