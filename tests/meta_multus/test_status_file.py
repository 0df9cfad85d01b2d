"""The network-status file of a pod from manifests: written once by ADD (the plan is not written
again to name it), removed by the DEL of the sandbox that wrote it and by no other, whatever
point a process was killed at."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycni.cni.runtime import Command, RuntimeArgs
from pycni.k8s.manifests import ManifestSource
from pycni.k8s.objects import Pod, parse_pod
from pycni.meta_multus import attach, claim_status, plugin, teardown
from pycni.meta_multus.call import MultusCall
from pycni.meta_multus.config import MultusConf
from pycni.meta_multus.plan import Plan, PlannedAttachment, PlanStore
from tests.meta_multus.helpers import MultusNode, nad_manifest, pod_manifest, write_manifests
from tests.meta_multus.test_lifecycle import BLUE_SUBNET, CLUSTER_SUBNET, assert_nothing_left

ENTRIES = [{"name": "default/blue", "interface": "net1", "ips": ["10.20.0.2"], "default": False, "dns": {}}]


def plan_header(node: MultusNode, container_id: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads((node.cni_dir / container_id).read_text())[0]["pycniPlan"]
    return header


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.1.0"])
def test_del_removes_its_own_status_and_leaves_a_newer_sandboxs(mnode: MultusNode, version: str) -> None:
    """Two sandboxes of one pod (the runtime re-created it before DELing the first): the first's
    DEL leaves the status the second wrote, the second's DEL removes it. The second network's
    default-route edits its cached result, which DEL reads to know the file."""
    selection = [{"name": "blue", "default-route": ["10.20.0.1"]}]
    write_manifests(
        mnode.manifests,
        [
            nad_manifest(
                "cluster",
                mnode.bridge("cluster", "mmc0", CLUSTER_SUBNET, gateway=True, cniVersion=version),
                "kube-system",
            ),
            nad_manifest("blue", mnode.bridge("blue", "mmb0", BLUE_SUBNET, cniVersion=version)),
            pod_manifest("web", networks=selection),
        ],
    )
    conf = mnode.multus_conf()
    first, second = mnode.pod(), mnode.pod()
    mnode.multus("ADD", conf, first, name="web", container_id="ctr-1").ok()
    written_first = mnode.network_status("web")
    assert [s["interface"] for s in written_first] == ["eth0", "net1"]
    assert plan_header(mnode, "ctr-1")["networkStatus"] is None, "the plan was written a second time"

    mnode.multus("ADD", conf, second, name="web", container_id="ctr-2").ok()
    written_second = mnode.network_status("web")
    assert written_second != written_first

    mnode.multus("DEL", conf, first, name="web", container_id="ctr-1").ok()
    assert mnode.network_status("web") == written_second
    assert mnode.plans() == ["ctr-2"]
    mnode.multus("DEL", conf, second, name="web", container_id="ctr-2").ok()
    assert mnode.network_status("web") is None
    assert not (mnode.cni_dir / "network-status" / "default").exists()
    assert_nothing_left(mnode, first)
    assert_nothing_left(mnode, second)


# -- the pieces --------------------------------------------------------------------------------
def manifest_conf(tmp_path: Path) -> MultusConf:
    raw = {
        "cniVersion": "1.1.0",
        "name": "m",
        "type": "multus",
        "clusterNetwork": "podnet",
        "manifests": str(tmp_path / "manifests"),
        "cniDir": str(tmp_path / "multus"),
    }
    return MultusConf.load(raw, "1.1.0")


def web_pod() -> Pod:
    return parse_pod(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"}}, "t"
    )


def one_network_plan(**keys: Any) -> Plan:
    att = PlannedAttachment(
        network="default/blue",
        ifname="net1",
        conflist={"cniVersion": "1.1.0", "name": "blue", "plugins": [{"type": "bridge"}]},
    )
    return Plan(container_id="c1", pod_namespace="default", pod_name="web", attachments=[att], **keys)


RT = RuntimeArgs(Command.DEL, "c1", "", "eth0", (("K8S_POD_NAMESPACE", "default"), ("K8S_POD_NAME", "web")))


def test_publish_to_a_status_file_writes_the_plan_no_second_time(tmp_path: Path) -> None:
    conf = manifest_conf(tmp_path)
    store = PlanStore(conf.cni_dir)
    plan = one_network_plan()
    store.save(plan)
    written = store.path("c1").stat()
    source = ManifestSource(tmp_path / "manifests", conf.status_dir)
    plugin._publish(MultusCall(conf, RT, None, store), plan, source, web_pod(), ENTRIES)  # type: ignore[arg-type]
    after = store.path("c1").stat()
    assert (after.st_ino, after.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert json.loads(source.status_path(web_pod()).read_text()) == ENTRIES


def test_a_status_write_that_fails_after_the_file_is_in_place_takes_it_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed ADD leaves nothing behind: not the attachments, nor a status file it wrote."""
    conf = manifest_conf(tmp_path)
    store = PlanStore(conf.cni_dir)
    plan = one_network_plan()
    store.save(plan)
    source = ManifestSource(tmp_path / "manifests", conf.status_dir)
    write = ManifestSource.write_network_status

    def write_then_fail(self: ManifestSource, pod: Pod, status: list[dict[str, Any]]) -> None:
        write(self, pod, status)
        raise PermissionError("after the rename")

    monkeypatch.setattr(ManifestSource, "write_network_status", write_then_fail)
    undone: list[str] = []
    monkeypatch.setattr(attach, "delete", lambda conf, plan, att, rt, ctx: undone.append(att.ifname))
    with pytest.raises(PermissionError):
        plugin._publish(MultusCall(conf, RT, None, store), plan, source, web_pod(), ENTRIES)  # type: ignore[arg-type]
    assert undone == ["net1"] and not store.exists("c1")
    assert not source.status_path(web_pod()).exists()


def test_del_forgets_the_status_before_any_delegate_removes_its_cached_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEL killed after a delegate's DEL (its cached result gone) could no longer tell the
    status file its own: the file goes first, then the attachments, then the plan."""
    conf = manifest_conf(tmp_path)
    store = PlanStore(conf.cni_dir)
    plan = one_network_plan()
    store.save(plan)
    seen: list[str] = []
    monkeypatch.setattr(teardown, "forget_status", lambda conf, p, rt: seen.append("status"))
    monkeypatch.setattr(attach, "delete", lambda conf, p, att, rt, ctx: seen.append(f"DEL {att.ifname}"))
    monkeypatch.setattr(claim_status, "forget", lambda conf, p, rt: seen.append("claims"))
    assert teardown.teardown(MultusCall(conf, RT, None, store), plan, records=True) == []  # type: ignore[arg-type]
    assert seen == ["status", "DEL net1", "claims"] and not store.exists("c1")


def test_an_earlier_versions_plan_names_its_status_and_a_plan_without_results_names_none(
    tmp_path: Path,
) -> None:
    """Plans of earlier versions recorded the status they wrote: DEL removes that. A plan whose
    results are not cached (its ADD was killed before the status was written) leaves the file,
    which another sandbox of the pod wrote."""
    conf = manifest_conf(tmp_path)
    source = ManifestSource(tmp_path / "manifests", conf.status_dir)
    path = source.status_path(web_pod())
    source.write_network_status(web_pod(), ENTRIES)
    teardown.forget_status(conf, one_network_plan(), RT)
    assert path.exists()
    teardown.forget_status(conf, one_network_plan(network_status=ENTRIES), RT)
    assert not path.exists()
