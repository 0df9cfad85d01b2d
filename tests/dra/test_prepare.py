"""NodePrepareResources / NodeUnprepareResources, called by the kubelet stand-in over the real DRA
protos on the driver's socket; claims come from the API server stand-in."""

from __future__ import annotations

import json
import shutil
import stat
import uuid
from typing import Any

from tests.dra.node import DRIVER, NODE, DraNode, set_link
from tests.helpers.poll import wait_until

NETDEV_ENV = "PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE"
DPDK_ENV = "PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK"


def claim_of(uid: str, name: str, namespace: str = "default") -> tuple[str, str, str]:
    return (namespace, name, uid)


def answer(response: Any) -> list[tuple[str, str, list[str], list[str]]]:
    """(pool, device, request names, CDI ids) of each device in one claim's answer."""
    return [
        (d.pool_name, d.device_name, list(d.request_names), list(d.cdi_device_ids)) for d in response.devices
    ]


def env(spec_device: dict[str, Any]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in spec_device["containerEdits"]["env"])


def group_of(dnode: DraNode, address: str) -> int:
    return next(vf.iommu_group for vf in dnode.hw.vfs if vf.address == address)


def test_a_claim_of_netdev_and_vfio_vfs_gets_its_cdi_spec(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim(
        "web", {"net": ["0000-3b-02-0", "0000-3c-02-1"], "dpdk": ["0000-3b-02-6", "0000-3c-02-4"]}
    )
    (only,) = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")]).items()
    assert only[0] == uid and only[1].error == ""
    assert answer(only[1]) == [
        (NODE, device, [request], [f"{DRIVER}/vf={uid}-{device}"])
        for request, device in (("net", "0000-3b-02-0"), ("net", "0000-3c-02-1"),
                                ("dpdk", "0000-3b-02-6"), ("dpdk", "0000-3c-02-4"))
    ]  # fmt: skip
    spec = dnode.cdi_spec(uid)
    assert spec is not None
    assert spec["kind"] == f"{DRIVER}/vf" and tuple(map(int, spec["cdiVersion"].split("."))) >= (0, 6, 0)
    devices = {d["name"]: d for d in spec["devices"]}
    assert sorted(devices) == sorted(
        f"{uid}-{d}" for d in ("0000-3b-02-0", "0000-3c-02-1", "0000-3b-02-6", "0000-3c-02-4")
    )
    netdev = devices[f"{uid}-0000-3b-02-0"]
    assert env(netdev)[NETDEV_ENV] == "0000:3b:02.0,0000:3c:02.1"  # the claim's addresses of that resource
    assert json.loads(env(netdev)[f"{NETDEV_ENV}_INFO"])["0000:3c:02.1"] == {
        "generic": {"deviceID": "0000:3c:02.1"}
    }
    assert "deviceNodes" not in netdev["containerEdits"]  # the CNI moves a netdev VF; no device node
    vfio = devices[f"{uid}-0000-3c-02-4"]
    assert env(vfio)[DPDK_ENV] == "0000:3b:02.6,0000:3c:02.4"
    group = group_of(dnode, "0000:3c:02.4")
    info = json.loads(env(vfio)[f"{DPDK_ENV}_INFO"])["0000:3c:02.4"]
    assert info["vfio"] == {"mount": "/dev/vfio/vfio", "dev-mount": f"/dev/vfio/{group}"}
    assert vfio["containerEdits"]["deviceNodes"] == [
        {"path": "/dev/vfio/vfio", "hostPath": "/dev/vfio/vfio", "permissions": "rw"},
        {"path": f"/dev/vfio/{group}", "hostPath": f"/dev/vfio/{group}", "permissions": "rw"},
    ]
    assert stat.S_IMODE(dnode.checkpoint.stat().st_mode) == 0o600
    assert uid in json.loads(dnode.checkpoint.read_text())["claims"]


def test_the_same_claim_twice_answers_the_same_without_asking_again(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-2"])
    first = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])[uid]
    spec = dnode.cdi_spec(uid)
    reads = [r for r in dnode.api.cluster.requests if r[1].endswith("/resourceclaims/web")]
    second = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])[uid]
    assert second == first and second.error == "" and len(second.devices) == 1
    assert dnode.cdi_spec(uid) == spec
    assert [r for r in dnode.api.cluster.requests if r[1].endswith("/resourceclaims/web")] == reads


def test_a_device_another_claim_holds_is_refused_and_nothing_written(dnode: DraNode) -> None:
    dnode.start()
    first = dnode.add_claim("first", ["0000-3b-02-3"])
    second = dnode.add_claim("second", ["0000-3b-02-4", "0000-3b-02-3"])
    assert dnode.kubelet.prepare(DRIVER, [claim_of(first, "first")])[first].error == ""
    refused = dnode.kubelet.prepare(DRIVER, [claim_of(second, "second")])[second]
    assert "0000-3b-02-3" in refused.error and f"default/first ({first})" in refused.error
    assert dnode.cdi_spec(second) is None
    assert second not in json.loads(dnode.checkpoint.read_text())["claims"]
    assert dnode.kubelet.unprepare(DRIVER, [claim_of(first, "first")])[first].error == ""
    assert dnode.kubelet.prepare(DRIVER, [claim_of(second, "second")])[second].error == ""  # free now


def test_several_claims_in_one_call_each_get_their_own_answer(dnode: DraNode) -> None:
    dnode.start()
    good = dnode.add_claim("good", ["0000-3b-02-0"])
    other = dnode.add_claim("other", ["0000-3c-02-0", "0000-3c-02-5"])
    dnode.add_claim("reborn", ["0000-3b-02-1"])  # kubelet still names its old uid
    elsewhere = dnode.add_claim("elsewhere", ["0000-3b-02-5"], pool="node-b")
    missing, stale = str(uuid.uuid4()), str(uuid.uuid4())
    claims = [
        claim_of(good, "good"), claim_of(missing, "missing"), claim_of(stale, "reborn"),
        claim_of(other, "other"), claim_of(elsewhere, "elsewhere"), claim_of("../x", "bad"),
    ]  # fmt: skip
    out = dnode.kubelet.prepare(DRIVER, claims)
    assert set(out) == {good, missing, stale, other, elsewhere, "../x"}
    assert out[good].error == "" and out[other].error == ""
    assert "not found" in out[missing].error
    assert "has UID" in out[stale].error
    assert "node-b" in out[elsewhere].error
    assert "not an object UID" in out["../x"].error
    assert {u for u in (good, missing, stale, other, elsewhere) if dnode.cdi_spec(u)} == {good, other}
    assert set(json.loads(dnode.checkpoint.read_text())["claims"]) == {good, other}


def test_unprepare_after_a_driver_restart_with_the_api_server_down(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-6", "0000-3b-02-1"])
    prepared = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])[uid]
    assert dnode.stop() == 0
    assert dnode.cdi_spec(uid) is not None  # a running pod's containers still need it
    dnode.api.stop()
    registered = len(dnode.kubelet.registrations)
    dnode.start(wait=False)
    wait_until(lambda: len(dnode.kubelet.registrations) > registered, timeout=30, what="registered again")
    again = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])[uid]  # kubelet restarted too
    assert again == prepared
    unknown = str(uuid.uuid4())
    out = dnode.kubelet.unprepare(DRIVER, [claim_of(uid, "web"), claim_of(unknown, "never")])
    assert out[uid].error == "" and out[unknown].error == ""
    assert dnode.cdi_spec(uid) is None
    assert json.loads(dnode.checkpoint.read_text())["claims"] == {}
    assert dnode.kubelet.unprepare(DRIVER, [claim_of(uid, "web")])[uid].error == ""  # idempotent


def test_an_unhealthy_device_is_refused(dnode: DraNode) -> None:
    dnode.start()
    set_link(dnode.ns, "ens1f1p", "down")  # ens1f1 loses carrier: its VFs are unhealthy
    wait_until(lambda: dnode.pool_devices().get("0000-3c-02-0", {}).get("taints"), timeout=5,
               what="ens1f1's VFs marked unhealthy")  # fmt: skip
    uid = dnode.add_claim("web", ["0000-3c-02-0"])
    out = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])[uid]
    assert "unhealthy" in out.error and "ens1f1 has no carrier" in out.error
    assert dnode.cdi_spec(uid) is None


def test_admin_access_shares_a_held_device(dnode: DraNode) -> None:
    dnode.start()
    user = dnode.add_claim("user", ["0000-3b-02-2"])
    admin = dnode.add_claim("monitor", ["0000-3b-02-2"], admin=True)
    out = dnode.kubelet.prepare(DRIVER, [claim_of(user, "user"), claim_of(admin, "monitor")])
    assert out[user].error == "" and out[admin].error == ""
    late = dnode.add_claim("late", ["0000-3b-02-2"])
    assert (
        "in use by claim default/user" in dnode.kubelet.prepare(DRIVER, [claim_of(late, "late")])[late].error
    )


def test_v1beta1_kubelets_are_served_the_same(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-4"])
    out = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")], service="v1beta1.DRAPlugin")[uid]
    assert answer(out) == [(NODE, "0000-3b-02-4", ["vf"], [f"{DRIVER}/vf={uid}-0000-3b-02-4"])]
    assert (
        dnode.kubelet.unprepare(DRIVER, [claim_of(uid, "web")], service="v1beta1.DRAPlugin")[uid].error == ""
    )
    assert dnode.cdi_spec(uid) is None


def test_specs_and_checkpoint_agree_after_a_restart(dnode: DraNode) -> None:
    """A reboot empties /var/run/cdi: specs come back from the checkpoint; a spec without a
    checkpoint entry (a crash before kubelet got its answer) is removed."""
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])
    spec = dnode.cdi_spec(uid)
    assert dnode.stop() == 0
    shutil.rmtree(dnode.cdi_dir)
    dnode.cdi_dir.mkdir()
    orphan = dnode.cdi_dir / f"{DRIVER}-vf_{uuid.uuid4()}.json"
    orphan.write_text("{}")
    dnode.start()
    assert dnode.cdi_spec(uid) == spec
    assert not orphan.exists()


def test_a_corrupt_checkpoint_is_rebuilt_from_the_cdi_specs(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])
    assert dnode.stop() == 0
    dnode.checkpoint.write_text(dnode.checkpoint.read_text().replace("0000-3b-02-0", "0000-3b-02-9"))
    dnode.start()
    assert list(dnode.checkpoint.parent.glob("checkpoint.json.corrupt-*"))
    thief = dnode.add_claim("thief", ["0000-3b-02-0"])
    assert "in use" in dnode.kubelet.prepare(DRIVER, [claim_of(thief, "thief")])[thief].error
    assert dnode.kubelet.unprepare(DRIVER, [claim_of(uid, "web")])[uid].error == ""
    assert dnode.cdi_spec(uid) is None


def test_a_checkpoint_where_older_drivers_kept_it_is_taken_over(dnode: DraNode) -> None:
    """Moved into the state directory at start, request names and all (a claim rebuilt from its
    CDI spec would have none)."""
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])
    assert dnode.stop() == 0
    legacy = dnode.plugin_dir / "checkpoint.json"
    dnode.checkpoint.rename(legacy)
    dnode.checkpoint.parent.rmdir()
    dnode.start()
    assert not legacy.exists() and uid in json.loads(dnode.checkpoint.read_text())["claims"]
    out = dnode.kubelet.prepare(DRIVER, [claim_of(uid, "web")])[uid]
    assert answer(out) == [(NODE, "0000-3b-02-0", ["vf"], [f"{DRIVER}/vf={uid}-0000-3b-02-0"])]
