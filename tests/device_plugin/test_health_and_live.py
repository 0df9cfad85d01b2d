"""Health and live changes, seen on a ListAndWatch stream within a second.

Fake sysfs stands in for the SR-IOV hardware; veth pairs in a throw-away namespace stand in for
the PF and VF netdevs, so carrier loss and netdev removal are real kernel events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from tests.device_plugin.conftest import CONFIG, PREFIX, Running, add_link, delete_link, set_link
from tests.device_plugin.kubelet import Stream, wait_for

A = ["0000:3b:02.0", "0000:3b:02.1", "0000:3b:02.2", "0000:3b:02.3"]


def healthy(devices: dict[str, str]) -> set[str]:
    return {d for d, h in devices.items() if h == "Healthy"}


def test_pf_carrier_loss_marks_its_vfs_unhealthy_and_back(
    start_service: Callable[..., Running], links_ns: str
) -> None:
    run = start_service(links_netns=links_ns)
    stream = Stream(run.socket("sriov_a"))
    try:
        assert healthy(stream.next()) == set(A)
        set_link(links_ns, "ens1f0p", "down")  # the peer going down takes the PF stand-in's carrier
        seen = stream.until(lambda d: not healthy(d), timeout=1.0)
        assert sorted(seen) == A  # still listed, now Unhealthy
        set_link(links_ns, "ens1f0p", "up")
        stream.until(lambda d: healthy(d) == set(A), timeout=1.0)
    finally:
        stream.close()


def test_vf_netdev_deleted_is_unhealthy_until_it_returns(
    start_service: Callable[..., Running], links_ns: str
) -> None:
    run = start_service(links_netns=links_ns)
    stream = Stream(run.socket("sriov_a"))
    try:
        assert healthy(stream.next()) == set(A)
        delete_link(links_ns, "ens1f0v1")
        seen = stream.until(lambda d: d.get("0000:3b:02.1") == "Unhealthy", timeout=1.0)
        assert healthy(seen) == set(A) - {"0000:3b:02.1"}
        add_link(links_ns, "ens1f0v1")
        stream.until(lambda d: healthy(d) == set(A), timeout=1.0)
    finally:
        stream.close()


def test_allocated_vf_whose_netdev_moves_to_a_pod_stays_healthy(
    start_service: Callable[..., Running], links_ns: str
) -> None:
    from tests.device_plugin.test_serving import allocate

    run = start_service(links_netns=links_ns)
    allocate(run, "sriov_a", ["0000:3b:02.2"])
    stream = Stream(run.socket("sriov_a"))
    try:
        assert healthy(stream.next()) == set(A)
        count = len(run.reconciles)
        delete_link(links_ns, "ens1f0v2")  # what the sriov CNI moving it into the pod looks like here
        wait_for(lambda: len(run.reconciles) > count, timeout=1.0, what="a reconcile after the link event")
        delete_link(links_ns, "ens1f0v3")  # a second, unallocated one: this must show
        seen = stream.until(lambda d: d.get("0000:3b:02.3") == "Unhealthy", timeout=1.0)
        assert seen["0000:3b:02.2"] == "Healthy"
    finally:
        stream.close()


def test_a_restarted_plugin_reads_back_what_pods_hold_and_keeps_it_healthy(
    start_service: Callable[..., Running], links_ns: str
) -> None:
    """The kubelet gave 0000:3b:02.2 to a pod before this plugin (re)started; its sriov CNI has
    not moved the netdev yet. When it does, the VF stays Healthy: the plugin read the allocation
    back from the pod-resources API. An unallocated VF losing its netdev is the control."""
    run = start_service(links_netns=links_ns, held={f"{PREFIX}/sriov_a": ["0000:3b:02.2"]})
    stream = Stream(run.socket("sriov_a"))
    try:
        assert healthy(stream.next()) == set(A)
        count = len(run.reconciles)
        delete_link(links_ns, "ens1f0v2")  # the CNI moving it into the pod
        wait_for(lambda: len(run.reconciles) > count, timeout=1.0, what="a reconcile after the link event")
        delete_link(links_ns, "ens1f0v3")
        seen = stream.until(lambda d: d.get("0000:3b:02.3") == "Unhealthy", timeout=1.0)
        assert seen["0000:3b:02.2"] == "Healthy"
    finally:
        stream.close()


def test_vf_removed_from_sysfs_leaves_pool_and_new_vf_joins(start_service: Callable[..., Running]) -> None:
    run = start_service()
    stream = Stream(run.socket("sriov_b"))
    try:
        assert sorted(stream.next()) == ["0000:3b:02.4", "0000:3b:02.5", "0000:3c:02.0", "0000:3c:02.1"]
        run.node.sysfs.remove_vf("0000:3c:00.0", 1)
        seen = stream.until(lambda d: "0000:3c:02.1" not in d, timeout=1.0)
        assert len(seen) == 3
        run.node.sysfs.add_vf("0000:3c:00.0", 1, "0000:3c:02.1", device="154c", driver="iavf", numa_node=0)
        stream.until(lambda d: "0000:3c:02.1" in d, timeout=1.0)
    finally:
        stream.close()


def test_vf_rebound_to_vfio_moves_pool(start_service: Callable[..., Running]) -> None:
    run = start_service()
    dpdk = Stream(run.socket("dpdk"))
    mlx = Stream(run.socket("mlx"))
    try:
        assert "0000:87:02.0" not in dpdk.next() and "0000:87:02.0" in mlx.next()
        run.node.sysfs.remove_netdev("0000:87:02.0", "ens2f1v0")
        run.node.sysfs.bind("0000:87:02.0", "vfio-pci")
        dpdk.until(lambda d: "0000:87:02.0" in d, timeout=1.0)
        mlx.until(lambda d: "0000:87:02.0" not in d, timeout=1.0)
    finally:
        dpdk.close()
        mlx.close()


def test_unbound_vf_stays_listed_unhealthy(start_service: Callable[..., Running]) -> None:
    run = start_service()
    stream = Stream(run.socket("dpdk"))
    try:
        assert healthy(stream.next()) == {
            "0000:3b:02.6", "0000:3b:02.7", "0000:86:02.4", "0000:86:02.5", "0000:86:02.6", "0000:86:02.7"
        }  # fmt: skip
        run.node.sysfs.unbind("0000:86:02.5")
        seen = stream.until(lambda d: d.get("0000:86:02.5") == "Unhealthy", timeout=1.0)
        assert len(seen) == 6
        run.node.sysfs.bind("0000:86:02.5", "vfio-pci")
        stream.until(lambda d: d.get("0000:86:02.5") == "Healthy", timeout=1.0)
    finally:
        stream.close()


def test_config_change_by_atomic_rename_is_applied_live(start_service: Callable[..., Running]) -> None:
    run = start_service()
    stream = Stream(run.socket("sriov_a"))
    try:
        assert sorted(stream.next()) == A
        config = json.loads(json.dumps(CONFIG))
        config["resourceList"][0]["selectors"]["pfNames"] = ["ens1f0#0-1"]
        config["resourceList"].append({"resourceName": "rest", "selectors": {"pfNames": ["ens1f1#2-7"]}})
        tmp = run.opts.config_path.with_name(".config.json.tmp")
        tmp.write_text(json.dumps(config))
        os.rename(tmp, run.opts.config_path)
        stream.until(lambda d: sorted(d) == A[:2], timeout=1.0)
        rest = wait_for(lambda: run.socket("rest").exists(), timeout=1.0, what="the new pool's socket")
        assert rest
        kubelet = run.kubelet
        assert kubelet is not None
        wait_for(lambda: kubelet.registered(f"{PREFIX}/rest"), timeout=1.0, what="the new pool registered")
    finally:
        stream.close()


def test_invalid_config_change_keeps_running_config(start_service: Callable[..., Running]) -> None:
    run = start_service()
    count = len(run.reconciles)
    run.opts.config_path.write_text('{"resourceList": [{"resourceName": "bad name"}]}')
    run.opts.config_path.write_text(json.dumps(CONFIG | {"resourceList": CONFIG["resourceList"][:1]}))
    wait_for(lambda: len(run.reconciles) > count, timeout=1.0, what="the valid change applied")
    wait_for(lambda: not run.socket("mlx").exists(), timeout=1.0, what="removed pool's socket gone")
    assert run.socket("sriov_a").exists()


def test_reregisters_within_a_second_after_kubelet_restart(start_service: Callable[..., Running]) -> None:
    run = start_service()
    kubelet = run.kubelet
    assert kubelet is not None
    wait_for(lambda: len(kubelet.registrations) == 4, what="initial registrations")
    kubelet.restart()  # removes our sockets, re-creates kubelet.sock
    wait_for(lambda: len(kubelet.registrations) >= 8, timeout=1.0, what="re-registration of all 4 pools")
    assert {r.resource_name for r in kubelet.registrations[4:]} == {
        r.resource_name for r in kubelet.registrations[:4]
    }
    for name in ("sriov_a", "mlx"):
        assert run.socket(name).is_socket()
    stream = Stream(run.socket("sriov_a"))
    try:
        assert sorted(stream.next()) == A
    finally:
        stream.close()


def test_our_socket_removed_in_watcher_mode_is_served_again(start_service: Callable[..., Running]) -> None:
    run = start_service(watcher=True)
    sock = run.socket("sriov_a")
    sock.unlink()  # the old server keeps listening on the unlinked inode: only a new one answers
    wait_for(sock.exists, timeout=1.0, what="socket re-created")
    stream = Stream(sock)
    try:
        assert sorted(stream.next()) == A
    finally:
        stream.close()


def test_default_route_device_is_never_advertised(
    start_service: Callable[..., Running], links_ns: str
) -> None:
    from pyroute2 import IPRoute

    with IPRoute(netns=links_ns, flags=0) as ipr:
        index = ipr.link_lookup(ifname="ens1f0v0")[0]
        ipr.addr("add", index=index, address="192.0.2.2", prefixlen=24)
        ipr.route("add", dst="0.0.0.0/0", gateway="192.0.2.1", oif=index)
    run = start_service(links_netns=links_ns)
    stream = Stream(run.socket("sriov_a"))
    try:
        assert sorted(stream.next()) == A[1:]
    finally:
        stream.close()


def test_registers_once_kubelet_appears_after_the_plugin(start_service: Callable[..., Running]) -> None:
    from tests.device_plugin.kubelet import FakeKubelet

    run = start_service(kubelet=False)
    wait_for(lambda: run.socket("sriov_a").exists(), what="serving before any kubelet")
    kubelet = FakeKubelet(run.opts.kubelet_dir)
    kubelet.start()
    try:
        wait_for(
            lambda: len(kubelet.registrations) >= 4,
            timeout=1.0,
            what="registration after kubelet.sock appeared",
        )
        assert {r.endpoint for r in kubelet.registrations} == {
            f"{PREFIX}_{n}.sock" for n in ("sriov_a", "sriov_b", "dpdk", "mlx")
        }
    finally:
        kubelet.stop()
