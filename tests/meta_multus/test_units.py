"""The pieces of multus on their own: selection parsing, network-status shape, the plan file,
resolution against an in-memory source, the API client's reuse, and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni.cni.errors import InvalidConfig
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.cni.types import parse_result
from pycni.k8s import apiserver
from pycni.k8s.apiserver import ApiServer
from pycni.k8s.manifests import ManifestSource
from pycni.k8s.objects import NetworkAttachmentDefinition, Pod, parse_nad, parse_pod
from pycni.meta_multus import selection, status
from pycni.meta_multus.allotment import DeviceAllotment
from pycni.meta_multus.config import MultusConf
from pycni.meta_multus.plan import CorruptPlan, Plan, PlannedAttachment, PlanStore
from pycni.meta_multus.resolve import Resolver
from tests.meta_multus.apiserver import Cluster, FakeApiServer, Pki
from tests.meta_multus.helpers import nad_manifest, pod_manifest, write_manifests


# -- selection ----------------------------------------------------------------------------------
def test_short_form() -> None:
    parsed = selection.parse(" a , other/b@eth9,c@x1 ", "ns", "networks")
    assert [(s.namespace, s.name, s.requested_ifname) for s in parsed] == [
        ("ns", "a", ""),
        ("other", "b", "eth9"),
        ("ns", "c", "x1"),
    ]


def test_json_form_keeps_every_key() -> None:
    value = json.dumps(
        [
            {
                "name": "a",
                "namespace": "n2",
                "interface": "data0",
                "mac": "c2:11:22:33:44:55",
                "ips": ["10.1.1.5/24", "fd00::5"],
                "default-route": ["10.1.1.1"],
                "cni-args": {"k": "v"},
                "portMappings": [{"hostPort": 80, "containerPort": 8080}],
                "bandwidth": {"ingressRate": 1000},
                "deviceID": "0000:03:02.1",
                "ipam-claim-reference": "claim",
            }
        ]
    )
    (element,) = selection.parse(value, "ns", "networks")
    assert element.capability_args() == {
        "mac": "c2:11:22:33:44:55",
        "ips": ["10.1.1.5/24", "fd00::5"],
        "portMappings": [{"hostPort": 80, "containerPort": 8080}],
        "bandwidth": {"ingressRate": 1000},
    }
    assert element.default_route == ["10.1.1.1"] and element.device_id == "0000:03:02.1"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("Bad_Name", "network name 'Bad_Name' is not a DNS-1123 label"),
        ("a/b/c", "is not '[namespace/]name[@interface]'"),
        ("a@", "is not '[namespace/]name[@interface]'"),
        ('[{"name": "a", "ips": ["10.1.1.300"]}]', "'10.1.1.300' is not an IP address"),
        ('[{"name": "a", "mac": "zz"}]', "is not a MAC address"),
        (
            '[{"name": "a", "interface": "averyveryverylongname"}]',
            "interface 'averyveryverylongname' is too long",
        ),
        ('{"name": "a"}', "expected a JSON list"),
        ("[oops", "not valid JSON"),
    ],
)
def test_invalid_selections_name_the_problem(value: str, words: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        selection.parse(value, "ns", "k8s.v1.cni.cncf.io/networks")
    assert words in caught.value.msg and "k8s.v1.cni.cncf.io/networks" in caught.value.msg


# -- network-status ------------------------------------------------------------------------------
def test_status_entries_have_the_reference_shape() -> None:
    result = parse_result(
        {
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "vethx"},
                {"name": "eth0", "mac": "0a:58:0a:01:02:03", "mtu": 1450, "sandbox": "/run/netns/p"},
            ],
            "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1", "interface": 1}],
            "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
        },
        "1.1.0",
    )
    info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:02.1"}}
    entries = status.entries(
        result, "kube-system/podnet", "eth0", default=True, gateways=[], device_info=info
    )
    assert entries == [
        {
            "name": "kube-system/podnet",
            "interface": "eth0",
            "ips": ["10.1.2.3"],
            "mac": "0a:58:0a:01:02:03",
            "mtu": 1450,
            "default": True,
            "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
            "device-info": info,
        }
    ]
    assert status.describe(entries[0]) == "Add eth0 [10.1.2.3] from kube-system/podnet"


def test_status_without_a_sandbox_interface_uses_the_attachment_name() -> None:
    result = parse_result({"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.3/24"}]}, "1.0.0")
    (entry,) = status.entries(result, "ns/n", "net1", default=False, gateways=["10.1.2.1"], device_info=None)
    assert entry == {
        "name": "ns/n",
        "interface": "net1",
        "ips": ["10.1.2.3"],
        "default": False,
        "dns": {},
        "gateway": ["10.1.2.1"],
    }


# -- the plan ------------------------------------------------------------------------------------
def plan_of(*networks: str) -> Plan:
    return Plan(
        container_id="c1",
        netns="/run/netns/p",
        attachments=[
            PlannedAttachment(network=n, ifname=f"net{i}", conflist={"name": n.split("/")[-1], "plugins": []})
            for i, n in enumerate(networks)
        ],
    )


def test_plan_round_trip_and_damage(tmp_path: Path) -> None:
    store = PlanStore(tmp_path)
    store.save(plan_of("a/b", "c/d"))
    assert store.load("c1") == plan_of("a/b", "c/d")
    assert (tmp_path / "c1").stat().st_mode & 0o777 == 0o600
    assert store.container_ids() == ["c1"] and store.load("c2") is None
    text = (tmp_path / "c1").read_text()
    (tmp_path / "c1").write_text(text.replace('"a/b"', '"a/x"'))
    with pytest.raises(CorruptPlan, match="checksum"):
        store.load("c1")
    (tmp_path / "c1").write_text(text[: len(text) // 2])
    with pytest.raises(CorruptPlan):
        store.load("c1")


# -- resolution ----------------------------------------------------------------------------------
class MemorySource:
    status_kept_apart = False

    def __init__(self, pods: list[dict[str, Any]], nads: list[dict[str, Any]]) -> None:
        self.pods = {(p.namespace, p.name): p for p in (parse_pod(o, "test") for o in pods)}
        self.nads = {(n.namespace, n.name): n for n in (parse_nad(o, "test") for o in nads)}
        self.events: list[tuple[str, str]] = []

    def pod(self, namespace: str, name: str, *, wait: bool = False) -> Pod | None:
        return self.pods.get((namespace, name))

    def nad(self, namespace: str, name: str) -> NetworkAttachmentDefinition | None:
        return self.nads.get((namespace, name))

    def write_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None: ...

    def forget_network_status(self, pod: Pod, status: list[dict[str, Any]]) -> None: ...

    def event(self, pod: Pod, reason: str, message: str, *, warning: bool = False) -> None:
        self.events.append((reason, message))


def simple(name: str, **keys: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "type": "bridge", **keys}


def resolver(
    networks: str, devices: dict[str, list[str]] | None = None, **conf_keys: Any
) -> tuple[Resolver, MemorySource]:
    source = MemorySource(
        [pod_manifest("web", "app", networks=networks)],
        [
            nad_manifest("podnet", simple("podnet"), "kube-system"),
            nad_manifest("extra", simple("extra"), "kube-system"),
            nad_manifest("a", simple("a", capabilities={"ips": True})),
            nad_manifest("a", {"cniVersion": "0.4.0", "type": "macvlan"}, "app"),
            nad_manifest("sriov", {"type": "sriov"}, "app", resource="intel.com/vf"),
        ],
    )
    raw = {"cniVersion": "1.1.0", "name": "multus", "type": "multus", "clusterNetwork": "podnet", **conf_keys}
    conf = MultusConf.load(raw, "1.1.0")
    rt = RuntimeArgs(Command.ADD, "cid", "/run/netns/p", "eth0", (("K8S_POD_NAMESPACE", "app"),))
    pod = source.pod("app", "web")
    return Resolver(conf, rt, source, pod, DeviceAllotment(lambda: devices or {})), source


def test_order_names_and_injection() -> None:
    res, _ = resolver(
        '[{"name": "a"}, {"name": "sriov"}, {"name": "sriov", "interface": "fast1"}, {"name": "a", "namespace": "default", "ips": ["10.9.0.5/24"], "cni-args": {"x": 1}}]',  # noqa: E501
        devices={"intel.com/vf": ["0000:03:02.2", "0000:03:02.1"]},
        defaultNetworks=["extra"],
    )
    planned = res.attachments()
    assert [(a.network, a.ifname) for a in planned] == [
        ("kube-system/podnet", "eth0"),
        ("kube-system/extra", "net1"),
        ("app/a", "net2"),
        ("app/sriov", "net3"),
        ("app/sriov", "fast1"),
        ("default/a", "net5"),
    ]
    assert planned[2].conflist == {
        "cniVersion": "0.4.0",
        "name": "a",
        "plugins": [{"type": "macvlan"}],
    }, "spec.config without a name gets the NAD's"
    sriov = planned[3].conflist["plugins"][0]
    assert (sriov["deviceID"], sriov["pciBusID"], sriov["runtimeConfig"]["deviceID"]) == ("0000:03:02.1",) * 3
    assert sriov["runtimeConfig"]["CNIDeviceInfoFile"].endswith("/cni/app-sriov-cid_net3")
    assert planned[3].conflist["cniVersion"] == "1.1.0", "a config without a version gets multus's"
    assert planned[4].device_id == "0000:03:02.2"
    assert planned[5].capability_args == {"ips": ["10.9.0.5/24"]}
    assert planned[5].conflist["plugins"][0]["args"] == {"cni": {"x": 1}}


def test_system_namespaces_get_no_default_networks() -> None:
    res, _ = resolver("", defaultNetworks=["extra"], systemNamespaces=["app"])
    assert [a.network for a in res.attachments()] == ["kube-system/podnet"]


def test_pod_default_network_annotation_replaces_the_cluster_network() -> None:
    res, source = resolver("")
    pod = source.pods["app", "web"]
    notes = {**pod.metadata.annotations, "v1.multus-cni.io/default-network": "extra"}
    res.pod = pod.model_copy(update={"metadata": pod.metadata.model_copy(update={"annotations": notes})})
    assert [a.network for a in res.attachments()] == ["kube-system/extra"]


@pytest.mark.parametrize(
    ("networks", "words"),
    [
        (
            '[{"name": "a", "ips": ["10.9.0.5/24"]}]',
            "app/a was asked for ips, but none of its plugins declares",
        ),
        (
            '[{"name": "a", "default-route": []},'
            ' {"name": "a", "namespace": "default", "default-route": []}]',
            "ECMP",
        ),
        ("sriov", "allocated 0 to this pod"),
        ('[{"name": "x", "type": "multus"}]', "app/x not found"),
    ],
)
def test_refusals(networks: str, words: str) -> None:
    res, source = resolver(networks)
    with pytest.raises(InvalidConfig if "not found" not in words else Exception) as caught:
        res.attachments()
    assert words in str(caught.value)
    if "not found" in words:
        assert source.events == [("NoNetworkFound", "cannot find network app/x")]


def test_default_route_filters_the_other_attachments() -> None:
    res, _ = resolver('[{"name": "a", "default-route": ["10.9.0.1"]}, {"name": "a", "namespace": "default"}]')
    planned = res.attachments()
    assert [a.filter_families for a in planned] == [[4], [], [4]]
    assert planned[1].gateways == ["10.9.0.1"]


@pytest.mark.parametrize(
    ("conf", "words"),
    [
        ({"type": "../../bin/sh"}, "is not a plain executable name"),
        ({"type": "multus"}, "cannot delegate to multus itself"),
        ({"plugins": []}, "non-empty list"),
    ],
)
def test_unsafe_delegate_types_are_refused(conf: dict[str, Any], words: str) -> None:
    source = MemorySource([pod_manifest("web", "app", networks="bad")], [nad_manifest("bad", conf, "app")])
    source.nads["kube-system", "podnet"] = parse_nad(
        nad_manifest("podnet", simple("podnet"), "kube-system"), "t"
    )
    raw = {"cniVersion": "1.1.0", "name": "multus", "type": "multus", "clusterNetwork": "podnet"}
    rt = RuntimeArgs(Command.ADD, "cid", "/run/netns/p", "eth0")
    res = Resolver(MultusConf.load(raw, "1.1.0"), rt, source, source.pod("app", "web"), DeviceAllotment(dict))
    with pytest.raises(InvalidConfig) as caught:
        res.attachments()
    assert words in caught.value.msg


def test_config_needs_a_cluster_network() -> None:
    with pytest.raises(InvalidConfig, match="set clusterNetwork or delegates"):
        MultusConf.load({"cniVersion": "1.1.0", "name": "m", "type": "multus"})
    conf = MultusConf.load({"cniVersion": "1.1.0", "name": "m", "delegates": [{"type": "bridge"}]})
    assert conf.global_namespaces == ["default"] and conf.multus_namespace == "kube-system"
    assert conf.cni_dir == Path("/var/lib/cni/multus") and conf.conf_dir == Path("/etc/cni/multus/net.d")


# -- sources -------------------------------------------------------------------------------------
def test_manifest_directory_reads_yaml_json_and_lists(tmp_path: Path) -> None:
    write_manifests(tmp_path, [pod_manifest("a", "n1")], "pods.yml")
    (tmp_path / "nads.json").write_text(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": [nad_manifest("x", simple("x"), "n1")]})
    )
    (tmp_path / "ignored.txt").write_text("not a manifest")
    source = ManifestSource(tmp_path, tmp_path / "status")
    pod = source.pod("n1", "a")
    assert pod is not None and pod.name == "a" and source.nad("n1", "x") is not None
    assert source.pod("n1", "b") is None
    entries = [{"name": "x", "default": True}]
    source.write_network_status(pod, entries)
    assert json.loads((tmp_path / "status" / "n1" / "a.json").read_text()) == entries
    source.forget_network_status(pod, [{"name": "other"}])
    assert (tmp_path / "status" / "n1" / "a.json").exists(), "a newer sandbox's status stays"
    source.forget_network_status(pod, entries)
    assert not (tmp_path / "status" / "n1").exists()


@pytest.fixture
def local_api(pki: Pki) -> Iterator[FakeApiServer]:
    if not Path("/proc/thread-self/ns/net").exists():
        pytest.skip("needs /proc")
    server = FakeApiServer(pki, "/proc/thread-self/ns/net", Cluster())
    try:
        yield server
    finally:
        server.stop()


def test_the_api_client_and_its_connection_are_reused(local_api: FakeApiServer, tmp_path: Path) -> None:
    local_api.cluster.add(pod_manifest("web"))
    local_api.cluster.add(nad_manifest("blue", simple("blue")))
    path = local_api.kubeconfig(tmp_path / "kubeconfig")
    for _ in range(3):
        api = ApiServer(str(path), {})
        assert api.pod("default", "web") is not None and api.nad("default", "blue") is not None
    assert local_api.cluster.connections == 1
    path.write_text(path.read_text().replace("test", "test2"))  # a changed kubeconfig: a new client
    assert ApiServer(str(path), {}).nad("default", "nope") is None
    assert local_api.cluster.connections == 2
    assert len(apiserver._CLIENTS) >= 2


def test_importing_multus_opens_nothing() -> None:
    """The daemon imports plugin modules before forking: they must create no thread or connection."""
    probe = (
        "import os, sys\n"
        "import pycni.meta_multus.plugin, pycni.k8s.apiserver, pycni.k8s.podresources, pycni.k8s.manifests\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('grpc', 'lightkube', 'httpx2', 'yaml'))\n"
        "print(len(os.listdir('/proc/self/task')), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1 []"


def test_readiness_indicator_is_polled_until_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pycni.cni.errors import TryAgainLater
    from pycni.meta_multus import guards

    indicator = tmp_path / "ready"
    conf = MultusConf.load(
        {"cniVersion": "1.1.0", "name": "m", "clusterNetwork": "x", "readinessindicatorfile": str(indicator)}
    )
    monkeypatch.setattr(guards, "READINESS_TIMEOUT", 0.3)
    with pytest.raises(TryAgainLater, match="did not appear within"):
        guards.wait_ready(conf)
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        indicator.touch()

    monkeypatch.setattr("pycni.meta_multus.guards.time.sleep", sleep)
    guards.wait_ready(conf)
    assert polls == [guards.READINESS_POLL], "it returns on the first poll that finds the file"


def _conf_logging_to(path: Path) -> MultusConf:
    return MultusConf.load(
        {
            "cniVersion": "1.1.0",
            "name": "m",
            "delegates": [{"type": "bridge"}],
            "logFile": str(path),
            "logLevel": "debug",
        },
        "1.1.0",
    )


def test_log_file_in_a_missing_directory_is_created(tmp_path: Path) -> None:
    import logging

    from pycni.meta_multus import guards

    target = tmp_path / "deep" / "er" / "multus.log"
    with guards.log_file(_conf_logging_to(target)):
        logging.getLogger("pycni.multus").error("hello from multus")
    assert "hello from multus" in target.read_text()
    assert target.parent.stat().st_mode & 0o777 == 0o700


def test_a_log_file_that_cannot_be_opened_is_a_warning_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from pycni.meta_multus import guards

    blocker = tmp_path / "file"
    blocker.write_text("")
    with guards.log_file(_conf_logging_to(blocker / "multus.log")):
        ran = True
    assert ran
    assert any("cannot open logFile" in r.getMessage() and not r.exc_info for r in caplog.records)


def test_a_manifest_removed_while_the_directory_is_read_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod's manifest deleted between listing and reading (a DEL racing the pod's removal)
    is as if it had not been there: no I/O error, the other objects are read."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}}
    gone = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "old", "namespace": "default"}}
    (tmp_path / "a-web.json").write_text(json.dumps(pod))
    (tmp_path / "b-old.json").write_text(json.dumps(gone))
    read_bytes = Path.read_bytes

    def racing_read(self: Path) -> bytes:
        if self.name == "b-old.json":
            self.unlink()
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", racing_read)
    source = ManifestSource(tmp_path, tmp_path / "status")
    assert source.pod("default", "web") is not None
    assert source.pod("default", "old") is None


def test_a_status_that_goes_with_the_pod_costs_no_second_plan_write(tmp_path: Path) -> None:
    """The API server's annotation is not removed by DEL: the plan is not rewritten to name it."""
    from pycni.meta_multus import plugin
    from pycni.meta_multus.call import MultusCall

    store = PlanStore(tmp_path / "plans")
    plan = Plan.model_validate(
        {"containerID": "c1", "podName": "web", "podNamespace": "default", "attachments": []}
    )
    store.save(plan)
    written = store.path("c1").stat()
    source = MemorySource([], [])
    assert not source.status_kept_apart
    pod = parse_pod(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}}, "t"
    )
    call = MultusCall(None, None, None, store)  # type: ignore[arg-type]
    plugin._publish(call, plan, source, pod, [{"name": "default/blue", "interface": "net1"}])
    after = store.path("c1").stat()
    assert (after.st_ino, after.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert [reason for reason, _ in source.events] == ["AddedInterface"]


def test_del_forgets_the_status_records_while_the_plan_still_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEL killed after removing the plan would leave status files nothing names any more."""
    from pycni.meta_multus import claim_status, teardown
    from pycni.meta_multus.call import MultusCall

    store = PlanStore(tmp_path / "plans")
    plan = Plan.model_validate(
        {"containerID": "c1", "podName": "web", "podNamespace": "default", "attachments": []}
    )
    store.save(plan)
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        teardown, "forget_status", lambda conf, p, rt: seen.append(("status", store.exists("c1")))
    )
    monkeypatch.setattr(
        claim_status, "forget", lambda conf, p, rt: seen.append(("claims", store.exists("c1")))
    )
    call = MultusCall(None, None, None, store)  # type: ignore[arg-type]
    assert teardown.teardown(call, plan, records=True) == []
    assert seen == [("status", True), ("claims", True)] and not store.exists("c1")
    store.save(plan)
    seen.clear()
    assert teardown.teardown(call, plan) == []  # an ADD's rollback: the pod stays, nothing to forget
    assert seen == [] and not store.exists("c1")


def test_delegates_links_are_deleted_together_after_every_delegate_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each delegate DEL leaves its pod link; all go in one batch at the end. A link that stays
    keeps its attachment in the plan (not deleted), so the retried DEL runs that network again."""
    from pycni.attach import veth
    from pycni.cni import callerview
    from pycni.meta_multus import attach, teardown
    from pycni.meta_multus.call import MultusCall

    store = PlanStore(tmp_path / "plans")
    plan = plan_of("default/a", "default/b", "default/c")
    store.save(plan)
    events: list[str] = []

    def delegate_del(conf: Any, p: Plan, att: PlannedAttachment, rt: Any, ctx: Any) -> None:
        left = callerview.leave_link_to_caller(p.netns, att.ifname)
        events.append(f"DEL {att.ifname} left={left}")

    batches: list[list[str]] = []

    def delete_left(left: list[callerview.LeftLink]) -> list[Exception | None]:
        batches.append([f"{link.netns_path}:{link.ifname}" for link in left])
        return [OSError("busy") if link.ifname == "net1" else None for link in left]

    monkeypatch.setattr(attach, "delete", delegate_del)
    monkeypatch.setattr(veth, "delete_left_links", delete_left)
    call = MultusCall(None, None, None, store)  # type: ignore[arg-type]
    errors = teardown.teardown(call, plan)

    assert events == ["DEL net2 left=True", "DEL net1 left=True", "DEL net0 left=True"]
    assert batches == [["/run/netns/p:net2", "/run/netns/p:net1", "/run/netns/p:net0"]]
    assert [e.msg.split(": ")[0] for e in errors] == ["network default/b on net1"]
    assert errors[0].msg.endswith("busy")
    assert [a.deleted for a in plan.attachments] == [True, False, True]
    assert store.load("c1") == plan, "the plan stays, saying what is left"
    assert not callerview.leave_link_to_caller("/run/netns/p", "net9"), "only within the teardown"
