"""multus against an API server stand-in (HTTPS, own CA, bearer token, real paths and shapes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.meta_multus.apiserver import TOKEN, Cluster, FakeApiServer
from tests.meta_multus.helpers import MultusNode, nad_manifest, pod_manifest

STATUS = "k8s.v1.cni.cncf.io/network-status"


def populate(node: MultusNode, cluster: Cluster, networks: str = "blue", uid: str = "uid-web") -> None:
    cluster.add(
        nad_manifest("cluster", node.bridge("cluster", "mmc0", "10.10.0.0/24", gateway=True), "kube-system")
    )
    cluster.add(nad_manifest("blue", node.bridge("blue", "mmb0", "10.20.0.0/24")))
    cluster.add(pod_manifest("web", networks=networks, uid=uid))


def test_add_writes_status_through_the_api_and_del_works_with_it_down(
    mnode: MultusNode, api: FakeApiServer
) -> None:
    populate(mnode, api.cluster)
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    pod = mnode.pod()
    result = mnode.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
    assert result["ips"][0]["address"].startswith("10.10.0.")
    assert pod.link_names() == {"lo", "eth0", "net1"}

    status = json.loads(api.cluster.pod_annotation("default", "web", STATUS) or "[]")
    assert [(s["name"], s["interface"], s["default"]) for s in status] == [
        ("kube-system/cluster", "eth0", True),
        ("default/blue", "net1", False),
    ]
    puts = [r for r in api.cluster.requests if r[0] == "PUT"]
    assert puts == [("PUT", "/api/v1/namespaces/default/pods/web/status")] * 2, "one 409, then written"
    assert api.cluster.pods["default", "web"]["spec"]["futureField"] == {"kept": True}
    reasons = [(e["reason"], e["involvedObject"]["name"]) for e in api.cluster.events]
    assert reasons == [("AddedInterface", "web"), ("AddedInterface", "web")]
    assert "Add net1" in api.cluster.events[1]["message"]

    api.stop()
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    assert pod.link_names() == {"lo"} and mnode.leases() == [] and mnode.plans() == []
    assert mnode.veths() == [] and mnode.cached_results() == []


def test_del_without_a_plan_rebuilds_it_from_the_api(mnode: MultusNode, api: FakeApiServer) -> None:
    populate(mnode, api.cluster)
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
    (mnode.cni_dir / "ctr-1").write_text('{"kind": "pycniMultusPlan", "trunc')  # a damaged plan
    (mnode.cni_dir / "results").rename(mnode.tmp / "results-lost")  # and no cached results either
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    assert pod.link_names() == {"lo"} and mnode.leases() == [] and mnode.plans() == []


@pytest.mark.parametrize(
    ("uid", "code", "words"),
    [("uid-other", 3, "was deleted and re-created"), ("", None, None)],
)
def test_pod_uid_must_match(
    mnode: MultusNode, api: FakeApiServer, uid: str, code: int | None, words: str | None
) -> None:
    populate(mnode, api.cluster)
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    pod = mnode.pod()
    out = mnode.multus("ADD", conf, pod, name="web", uid=uid)
    if code is None:
        out.ok()
        mnode.multus("DEL", conf, pod, name="web", uid=uid).ok()
    else:
        assert out.json["code"] == code and words in out.json["msg"]
    assert mnode.plans() == [] and mnode.leases() == []


def test_missing_pod_and_bad_credentials_are_clear_errors(mnode: MultusNode, api: FakeApiServer) -> None:
    populate(mnode, api.cluster)
    pod = mnode.pod()
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    out = mnode.multus("ADD", conf, pod, name="ghost")
    assert out.json["code"] == 11 and "pod default/ghost not found" in out.json["msg"]
    bad = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "bad-kubeconfig", token="wrong")))
    out = mnode.multus("ADD", bad, pod, name="web")
    assert out.code != 0 and "401" in out.json["msg"], out.stdout
    missing = mnode.multus_conf(kubeconfig=str(mnode.tmp / "nope"))
    out = mnode.multus("ADD", missing, pod, name="web")
    assert out.json["code"] == 7 and "kubeconfig" in out.json["msg"]
    assert pod.link_names() == {"lo"} and mnode.plans() == []


EXEC_PLUGIN = """#!{python}
import json, os, sys
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["apiVersion"] == "client.authentication.k8s.io/v1", info
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": os.environ["TOKEN_FROM_ENV"],
                             "expirationTimestamp": "2999-01-01T00:00:00Z"}}}}))
"""


def test_exec_credential_plugin_v1(mnode: MultusNode, api: FakeApiServer) -> None:
    """lightkube cannot run a `client.authentication.k8s.io/v1` plugin; multus runs it itself."""
    populate(mnode, api.cluster)
    plugin = mnode.tmp / "cred-plugin"
    plugin.write_text(EXEC_PLUGIN.format(python=sys.executable))
    plugin.chmod(0o755)
    path = api.kubeconfig(mnode.tmp / "kubeconfig")
    config = json.loads(path.read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "env": [{"name": "TOKEN_FROM_ENV", "value": TOKEN}],
            "interactiveMode": "Never",
        }
    }
    path.write_text(json.dumps(config))
    conf = mnode.multus_conf(kubeconfig=str(path))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
    assert api.cluster.pod_annotation("default", "web", STATUS)
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web").ok()


def test_in_cluster_without_service_env_is_a_config_error(mnode: MultusNode, tmp_path: Path) -> None:
    pod = mnode.pod()
    out = mnode.multus("ADD", mnode.multus_conf(kubeconfig="incluster"), pod, name="web")
    assert out.json["code"] == 7 and "KUBERNETES_SERVICE_HOST" in out.json["msg"]


def test_del_with_a_damaged_plan_and_the_api_down_uses_the_cached_results(
    mnode: MultusNode, api: FakeApiServer
) -> None:
    """Neither the plan nor the API: every attachment that was made left its exact config in the cache."""
    populate(mnode, api.cluster)
    conf = mnode.multus_conf(kubeconfig=str(api.kubeconfig(mnode.tmp / "kubeconfig")))
    pod = mnode.pod()
    mnode.multus("ADD", conf, pod, name="web", uid="uid-web").ok()
    (mnode.cni_dir / "ctr-1").write_bytes(b"\0" * 64)  # a power loss's leftovers
    api.stop()
    mnode.multus("DEL", conf, pod, name="web", uid="uid-web").ok()
    assert pod.link_names() == {"lo"} and mnode.leases() == [] and mnode.plans() == []
    assert mnode.veths() == [] and mnode.cached_results() == []
