"""Registration through kubelet's plugin watcher, and staying registered: kubelet restarting (with
and without wiping its registry directory), our sockets removed, kubelet wiping the node's slices."""

from __future__ import annotations

import shutil

from tests.dra.node import DRIVER, RESOURCE_API, DraNode
from tests.helpers.poll import wait_until


def test_get_info_names_the_driver_its_endpoint_and_every_service(dnode: DraNode) -> None:
    dnode.start()
    (registration,) = dnode.kubelet.registrations
    info = registration.info
    assert registration.socket == dnode.workdir / "plugins_registry" / f"{DRIVER}-reg.sock"
    assert (info.type, info.name, info.endpoint) == ("DRAPlugin", DRIVER, str(dnode.plugin_dir / "dra.sock"))
    assert list(info.supported_versions) == [
        "v1.DRAPlugin", "v1beta1.DRAPlugin", "v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth"
    ]  # fmt: skip
    assert registration.service == "v1.DRAPlugin"  # kubelet takes the first it knows


def reregistered(dnode: DraNode, before: int) -> None:
    wait_until(lambda: len(dnode.kubelet.registrations) > before, timeout=5, what="registered again")
    wait_until(dnode.ready, timeout=5, what="ready again")


def test_a_kubelet_restart_that_recreates_the_registry_directory_registers_us_again(dnode: DraNode) -> None:
    dnode.start()
    before = len(dnode.kubelet.registrations)
    dnode.kubelet.restart(wipe_registry=True)
    reregistered(dnode, before)
    assert (dnode.workdir / "plugins_registry" / f"{DRIVER}-reg.sock").is_socket()
    stream = dnode.kubelet.health(DRIVER)  # the new kubelet's health stream works
    assert len(stream.next()) == 16
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    assert dnode.kubelet.prepare(DRIVER, [("default", "web", uid)])[uid].error == ""


def test_our_registration_socket_removed_is_served_anew(dnode: DraNode) -> None:
    dnode.start()
    before = len(dnode.kubelet.registrations)
    (dnode.workdir / "plugins_registry" / f"{DRIVER}-reg.sock").unlink()
    reregistered(dnode, before)


def test_our_plugin_socket_removed_is_served_anew(dnode: DraNode) -> None:
    dnode.start()
    socket = dnode.plugin_dir / "dra.sock"
    before = socket.stat().st_ctime_ns  # the inode number may well be reused; the ctime is not
    socket.unlink()
    wait_until(
        lambda: socket.is_socket() and socket.stat().st_ctime_ns != before, timeout=5, what="a new socket"
    )
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    assert dnode.kubelet.prepare(DRIVER, [("default", "web", uid)])[uid].error == ""


def test_the_plugin_directory_removed_comes_back_with_the_checkpoint(dnode: DraNode) -> None:
    dnode.start()
    uid = dnode.add_claim("web", ["0000-3b-02-0"])
    dnode.kubelet.prepare(DRIVER, [("default", "web", uid)])
    gone = dnode.plugin_dir.with_name("removed")
    dnode.plugin_dir.rename(gone)  # removed at one instant, as seen from outside (rm -r races the driver)
    shutil.rmtree(gone)
    wait_until(lambda: (dnode.plugin_dir / "dra.sock").is_socket() and dnode.checkpoint.exists(), timeout=5,
               what="socket and checkpoint back")  # fmt: skip
    assert uid in dnode.checkpoint.read_text()


def test_slices_wiped_by_a_restarting_kubelet_are_published_again(dnode: DraNode) -> None:
    dnode.start()
    dnode.kubelet.stop()
    for obj in dnode.slices():  # what a starting kubelet does to its node's slices
        dnode.api.cluster.store.remove(RESOURCE_API, "resourceslices", obj["metadata"]["name"])
    before = len(dnode.kubelet.registrations)
    dnode.kubelet.start()
    wait_until(lambda: len(dnode.kubelet.registrations) > before, timeout=5, what="registered again")
    dnode.wait_pool(16)


def test_a_refused_registration_is_not_ready(dnode: DraNode) -> None:
    dnode.kubelet.known_services = ("v2.DRAPlugin",)  # a kubelet that speaks none of our versions
    dnode.start(wait=False)
    wait_until(lambda: any(e["msg"] == "kubelet refused the driver" for e in dnode.logs()), timeout=30,
               what="the driver told it was refused")  # fmt: skip
    assert dnode.http("/readyz")[0] == 503
    assert dnode.http("/healthz")[0] == 200
