"""containerd 1.6's CRI drives the plugins as kubelet makes it: sandboxes started and stopped with
`K8S_POD_*` args, both netns locations, containerd killed and restarted with pods up, a burst.

Every scenario runs with our executables (through the node daemon) and with the Go reference
plugins, the control; both must give every pod its network and leave nothing behind.
"""

from __future__ import annotations

import ipaddress
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.process import DaemonProcess
from tests.e2e.conftest import PLUGIN_SETS, E2eNode, MakeContainerd, in_netns
from tests.e2e.containerd import RUN_NETNS, Containerd
from tests.e2e.cri import CriError, Pod, Sandbox
from tests.e2e.leftovers import LIBCNI_RESULTS
from tests.helpers.netns import unique
from tests.helpers.timings import Timings
from tests.meta_multus.helpers import nad_manifest, pod_manifest, write_manifests

SUBNET = "10.201.0.0/24"


def write_conf(ctd: Containerd, name: str, conf: dict[str, Any]) -> None:
    (ctd.conf_dir / name).write_text(json.dumps(conf))


def start_pods(ctd: Containerd, pods: list[Pod]) -> list[Sandbox]:
    assert ctd.cri is not None
    cri = ctd.cri
    with ThreadPoolExecutor(len(pods)) as pool:
        return list(pool.map(cri.run, pods))


def assert_networked(ctd: Containerd, sandbox: Sandbox, subnet: str) -> tuple[str, str]:
    """The pod's eth0 has the address the runtime reports, in `subnet`, with a default route; its
    (netns path as this process reaches it, address)."""
    assert ctd.cri is not None
    netns = ctd.host_path(ctd.cri.netns(sandbox.id))
    (address,) = ctd.cri.ips(sandbox.id)
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    addrs = json.loads(in_netns(netns, "ip", "-j", "addr", "show", "eth0"))
    assert address in [a["local"] for a in addrs[0]["addr_info"]]
    routes = json.loads(in_netns(netns, "ip", "-j", "route", "show", "default"))
    assert [r["dev"] for r in routes] == ["eth0"]
    return netns, address


def plugin_env(plugins: str, node: E2eNode, daemon: DaemonProcess) -> dict[str, str]:
    return node.plugin_env(daemon) if plugins == "pycni" else {}


@pytest.mark.parametrize("netns_location", ["run-netns", "state-dir"])
@pytest.mark.parametrize("plugins", PLUGIN_SETS)
def test_bridge_pods_start_talk_survive_a_containerd_kill_and_leave_nothing(
    make_containerd: MakeContainerd,
    e2e_node: E2eNode,
    e2e_daemon: DaemonProcess,
    plugins: str,
    netns_location: str,
) -> None:
    ctd = make_containerd(
        plugins,
        netns_under_state=netns_location == "state-dir",
        env=plugin_env(plugins, e2e_node, e2e_daemon),
    )
    net = unique("e2e", 12)
    write_conf(ctd, "10-e2e.conflist", e2e_node.bridge_conflist(net, unique("br", 12), SUBNET))
    pods = [Pod.named(unique("web", 10)) for _ in range(3)]
    sandboxes = start_pods(ctd, pods)
    found = [assert_networked(ctd, s, SUBNET) for s in sandboxes]
    netns_paths = [netns for netns, _ in found]
    assert ctd.cri is not None
    reported = [ctd.cri.netns(s.id) for s in sandboxes]
    where = ctd.state / "io.containerd.grpc.v1.cri" / "netns" if netns_location == "state-dir" else RUN_NETNS
    assert {Path(p).parent for p in reported} == {where}, reported
    (first_ns, _), (_, second_ip) = found[0], found[1]
    in_netns(first_ns, "ping", "-c1", "-W2", second_ip)
    # what containerd sent, as its libcni cache recorded it: kubelet's pod identity in CNI_ARGS
    cached = json.loads(next(LIBCNI_RESULTS.glob(f"{net}-{sandboxes[0].id}-eth0")).read_text())
    args = dict(cached["cniArgs"])
    assert args["K8S_POD_NAME"] == pods[0].name and args["K8S_POD_UID"] == pods[0].uid

    ctd.kill()  # a crash: shims and pods live on
    ctd.start()
    assert ctd.cri is not None
    assert sorted(ctd.cri.sandboxes()) == sorted(s.id for s in sandboxes)
    assert_networked(ctd, sandboxes[2], SUBNET)
    for sandbox in sandboxes:
        ctd.cri.stop_and_remove(sandbox.id)
    e2e_node.leftovers.assert_clean([s.id for s in sandboxes], netns_paths)


@pytest.mark.parametrize("plugins", PLUGIN_SETS)
def test_a_burst_of_16_sandboxes_all_get_their_network(
    make_containerd: MakeContainerd,
    e2e_node: E2eNode,
    e2e_daemon: DaemonProcess,
    plugins: str,
    timings: Timings,
) -> None:
    ctd = make_containerd(plugins, env=plugin_env(plugins, e2e_node, e2e_daemon))
    net = unique("e2e", 12)
    write_conf(ctd, "10-e2e.conflist", e2e_node.bridge_conflist(net, unique("br", 12), SUBNET))
    assert ctd.cri is not None
    cri = ctd.cri
    warm = cri.run(Pod.named(unique("warm", 10)))  # the first sandbox pays containerd's own warm-up
    cri.stop_and_remove(warm.id)
    sandboxes = start_pods(ctd, [Pod.named(unique("burst", 10)) for _ in range(16)])
    netns_paths = [assert_networked(ctd, s, SUBNET)[0] for s in sandboxes]
    with ThreadPoolExecutor(16) as pool:
        stopped = list(pool.map(cri.stop_and_remove, [s.id for s in sandboxes]))
    e2e_node.leftovers.assert_clean([s.id for s in sandboxes], netns_paths)
    lifecycle = [s.started_in + t for s, t in zip(sandboxes, stopped, strict=True)]
    timings.add("containerd burst of 16: run + stop + remove", plugins, lifecycle)
    timings.add("containerd burst of 16: run", plugins, [s.started_in for s in sandboxes])
    timings.add("containerd burst of 16: stop + remove", plugins, stopped)
    assert statistics.median(lifecycle) > 0


BLUE_SUBNET = "10.202.0.0/24"


def multus_node(ctd: Containerd, node: E2eNode, extra_nads: list[dict[str, Any]]) -> tuple[str, Path]:
    """The node's primary network and `00-multus.conflist` in front of it, written by
    `pycni node-install` for a node without an API server; the manifests dir it reads."""
    net = unique("e2e", 12)
    write_conf(ctd, "10-e2e.conflist", node.bridge_conflist(net, unique("br", 12), SUBNET))
    manifests = node.work / "manifests"
    blue = node.bridge_conflist("blue", unique("bb", 12), BLUE_SUBNET)["plugins"][0]
    write_manifests(
        manifests, [nad_manifest("blue", {"cniVersion": "1.0.0", "name": "blue", **blue}), *extra_nads]
    )
    subprocess.run(
        [
            sys.executable, "-m", "pycni", "node-install",
            "--skip-multus-binary-copy", "--skip-config-watch", "--no-kubeconfig",
            f"--cni-conf-dir={ctd.conf_dir}", f"--cni-conf-dir-host={ctd.conf_dir}",
            f"--cni-bin-dir-host={ctd.bin_dir}", f"--multus-manifests-dir={manifests}",
            f"--multus-cni-dir={node.multus_dir}", "--multus-log-level=verbose",
            f"--multus-log-file={node.work / 'multus.log'}",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    assert (ctd.conf_dir / "00-multus.conflist").exists()
    return net, manifests


def ipv4_of(netns: str, ifname: str) -> str:
    (link,) = json.loads(in_netns(netns, "ip", "-j", "-4", "addr", "show", ifname))
    return str(link["addr_info"][0]["local"])


def add_pods(manifests: Path, pods: list[Pod], networks: str) -> None:
    write_manifests(
        manifests, [pod_manifest(p.name, p.namespace, networks, uid=p.uid) for p in pods], name="pods.yaml"
    )


def test_multus_from_a_manifest_directory_gives_each_pod_eth0_and_net1(
    make_containerd: MakeContainerd, e2e_node: E2eNode, e2e_daemon: DaemonProcess
) -> None:
    ctd = make_containerd("pycni", env=e2e_node.plugin_env(e2e_daemon))
    _, manifests = multus_node(ctd, e2e_node, [])
    pods = [Pod.named(unique("two", 10)) for _ in range(2)]
    add_pods(manifests, pods, "blue")
    sandboxes = start_pods(ctd, pods)
    netns_paths = []
    for pod, sandbox in zip(pods, sandboxes, strict=True):
        netns, address = assert_networked(ctd, sandbox, SUBNET)
        netns_paths.append(netns)
        net1 = json.loads(in_netns(netns, "ip", "-j", "-4", "addr", "show", "net1"))[0]["addr_info"][0][
            "local"
        ]
        assert ipaddress.ip_address(net1) in ipaddress.ip_network(BLUE_SUBNET)
        status = json.loads(
            (e2e_node.multus_dir / "network-status" / pod.namespace / f"{pod.name}.json").read_text()
        )
        assert [(s["interface"], s["ips"], s.get("default", False)) for s in status] == [
            ("eth0", [address], True),
            ("net1", [net1], False),
        ]
    in_netns(netns_paths[0], "ping", "-c1", "-W2", ipv4_of(netns_paths[1], "net1"))
    assert ctd.cri is not None
    for sandbox in sandboxes:
        ctd.cri.stop_and_remove(sandbox.id)
    e2e_node.leftovers.assert_clean([s.id for s in sandboxes], netns_paths)
    log = (e2e_node.work / "multus.log").read_text()
    assert f"ADD {sandboxes[0].id}: pod default/{pods[0].name}" in log, "multus logs at verbose"


def test_a_pod_whose_network_plugin_is_not_installed_fails_to_start_and_is_removed_cleanly(
    make_containerd: MakeContainerd, e2e_node: E2eNode, e2e_daemon: DaemonProcess
) -> None:
    ctd = make_containerd("pycni", env=e2e_node.plugin_env(e2e_daemon))
    broken = nad_manifest("broken", {"cniVersion": "1.0.0", "name": "broken", "type": "not-installed"})
    _, manifests = multus_node(ctd, e2e_node, [broken])
    pod = Pod.named(unique("miss", 10))
    add_pods(manifests, [pod], "blue,broken")
    assert ctd.cri is not None
    with pytest.raises(CriError) as failed:
        ctd.cri.run(pod)
    assert "default/broken on net2" in failed.value.details and "not-installed" in failed.value.details
    for attempt in range(1, 3):  # kubelet retries, then gives up on the pod: StopPodSandbox + Remove
        with pytest.raises(CriError):
            ctd.cri.run(pod, attempt)
    for sandbox_id in ctd.cri.sandboxes():
        ctd.cri.stop_and_remove(sandbox_id)
    assert ctd.cri.sandboxes() == []
    e2e_node.leftovers.assert_clean([], [])


def mounts_under(root: Path) -> list[str]:
    prefix = str(root) + "/"
    points = (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return [p for p in points if p == str(root) or p.startswith(prefix)]


def test_a_netns_containerd_left_behind_is_reaped_with_it_and_never_in_the_machine_s_run_netns(
    make_containerd: MakeContainerd,
) -> None:
    """containerd killed while it makes a sandbox leaves a netns file it never recorded: one made
    where it makes them, in its /var/run/netns, shows under its work dir and goes with it."""
    ctd = make_containerd("reference")
    assert ctd.proc is not None
    name = unique("cni-left", 15)
    in_containerd_s_mounts = ["nsenter", f"--mount=/proc/{ctd.proc.pid}/ns/mnt"]
    subprocess.run([*in_containerd_s_mounts, "ip", "netns", "add", name], check=True)
    left = ctd.run_netns / name
    assert ctd.host_path(str(RUN_NETNS / name)) == str(left)
    in_netns(str(left), "ip", "link", "show", "lo")  # a live netns, reached from here
    assert not (RUN_NETNS / name).exists(), "containerd's netns dir is the machine's"
    ctd.kill()
    ctd.cleanup()
    assert mounts_under(ctd.work) == []
    assert not (RUN_NETNS / name).exists()
