"""deploy/kubernetes/rbac.yaml grants exactly what multus calls: the calls seen on the wire by the
API server stand-in over ADD, a status write with a conflict, events, DEL and a rebuilt DEL."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.rbac import client_verbs, granted, route
from tests.meta_multus.apiserver import FakeApiServer
from tests.meta_multus.helpers import MultusNode
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
]


def test_rbac_rules_are_exactly_the_calls_made(mnode: MultusNode, api: FakeApiServer) -> None:
    populate(mnode, api.cluster)
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web").ok()  # GET pod, NADs; PUT status (409); events
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web", container_id="again").ok()
    for plan in mnode.plans():
        (mnode.cni_dir / plan).unlink()  # a DEL without its plan rebuilds it from the API
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web", container_id="again").ok()
    seen = {route(ROUTES, method, path.split("?")[0]) for method, path in api.cluster.requests}
    assert seen == granted(RBAC)


def test_the_client_module_uses_no_verb_beyond_the_rules() -> None:
    """Every lightkube call in pycni/k8s/apiserver.py maps to a granted verb (a static check)."""
    module = Path(__file__).resolve().parents[2] / "pycni" / "k8s" / "apiserver.py"
    assert client_verbs(module) == {verb for _, _, verb in granted(RBAC)}
