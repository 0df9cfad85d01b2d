"""Device health on kubelet's stream (DRAResourceHealth v1alpha1, and v1 with messages) and in the
slices: veth stand-ins in the node's namespace are the PF and VF netdevs, so a link going down is
a real kernel event; a change must reach the stream within a second."""

from __future__ import annotations

import time

from tests.dra.node import DRIVER, DraNode, set_link
from tests.helpers.poll import wait_until

ENS1F0_VFS = [f"0000-3b-02-{i}" for i in range(8)]


def unhealthy(report: dict[str, str]) -> set[str]:
    return {name for name, health in report.items() if health != "Healthy"}


def test_a_vf_link_going_down_reaches_the_stream_within_a_second_and_marks_its_slice(dnode: DraNode) -> None:
    dnode.start()
    stream = dnode.kubelet.health(DRIVER)
    first = stream.next()
    assert len(first) == 16 and not unhealthy(first)
    started = time.monotonic()
    set_link(dnode.ns, "ens1f0v2p", "down")  # the VF stand-in, still up, loses its carrier
    seen = stream.until(lambda r: r.get("0000-3b-02-2") == "Unhealthy", timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert unhealthy(seen) == {"0000-3b-02-2"}
    wait_until(
        lambda: "taints" in dnode.pool_devices().get("0000-3b-02-2", {}), timeout=5, what="the slice marked"
    )
    device = dnode.pool_devices()["0000-3b-02-2"]
    assert device["attributes"]["healthy"] == {"bool": False}
    assert device["taints"] == [{"key": f"{DRIVER}/unhealthy", "effect": "NoSchedule"}]
    assert dnode.pool_devices()["0000-3b-02-3"]["attributes"]["healthy"] == {"bool": True}
    set_link(dnode.ns, "ens1f0v2p", "up")
    stream.until(lambda r: not unhealthy(r), timeout=1.0)
    wait_until(lambda: "taints" not in dnode.pool_devices().get("0000-3b-02-2", {"taints": 1}), timeout=5,
               what="the mark lifted")  # fmt: skip


def test_pf_carrier_loss_makes_all_its_vfs_unhealthy_netdev_and_vfio(dnode: DraNode) -> None:
    dnode.start()
    stream = dnode.kubelet.health(DRIVER)
    stream.next()
    set_link(dnode.ns, "ens1f0p", "down")
    seen = stream.until(lambda r: unhealthy(r) == set(ENS1F0_VFS), timeout=1.0)
    assert len(seen) == 16
    set_link(dnode.ns, "ens1f0p", "up")
    stream.until(lambda r: not unhealthy(r), timeout=1.0)


def test_a_prepared_vf_gone_from_sysfs_stays_on_the_stream_as_unhealthy(dnode: DraNode) -> None:
    dnode.start()
    stream = dnode.kubelet.health(DRIVER)
    stream.next()
    held = dnode.add_claim("web", ["0000-3c-02-7"])
    assert dnode.kubelet.prepare(DRIVER, [("default", "web", held)])[held].error == ""
    dnode.hw.sysfs.remove_vf(dnode.hw.pfs["ens1f1"], 7)
    dnode.hw.sysfs.remove_vf(dnode.hw.pfs["ens1f1"], 6)
    seen = stream.until(lambda r: "0000-3c-02-6" not in r, timeout=1.0)
    assert seen["0000-3c-02-7"] == "Unhealthy"  # a claim holds it: kubelet must hear it is gone
    dnode.wait_pool(14)
    assert dnode.kubelet.unprepare(DRIVER, [("default", "web", held)])[held].error == ""
    stream.until(lambda r: "0000-3c-02-7" not in r, timeout=1.0)


def test_the_v1_stream_says_why(dnode: DraNode) -> None:
    dnode.kubelet.health_service = "v1.DRAResourceHealth"
    dnode.start()
    stream = dnode.kubelet.health(DRIVER)
    stream.next()
    set_link(dnode.ns, "ens1f1p", "down")

    def ens1f1_down(response: object) -> bool:
        return any(d.device.device_name == "0000-3c-02-0" and d.health == stream.pb.UNHEALTHY
                   for d in response.devices)  # type: ignore[attr-defined]  # fmt: skip

    response = stream.until_raw(ens1f1_down, timeout=1.0)
    entry = next(d for d in response.devices if d.device.device_name == "0000-3c-02-0")
    assert entry.message == "PF ens1f1 has no carrier" and entry.device.pool_name == "node-a"
    assert entry.last_updated_time > 0
