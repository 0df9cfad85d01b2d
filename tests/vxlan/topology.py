"""A multi-node overlay on one machine: an underlay bridge in one namespace, nodes joined to it
by veths, pods as namespaces, and the vxlan plugin exec'd inside each node's namespace.

Underlay addresses are TEST-NET-1 (192.0.2.0/24) and a ULA prefix, pod addresses another
ULA/private range; nothing leaves the namespaces created here.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycni.net import netns as cni_netns
from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns

UNDERLAY_BRIDGE = "ul"
UPLINK = "up0"
POD_V4 = "10.77.0.0/24"
POD_V6 = "fd77::/64"
ETH_P_ALL = 0x0003


def underlay_v4(i: int) -> str:
    return f"192.0.2.{i + 1}"


def underlay_v6(i: int) -> str:
    return f"fd00:db8::{i + 1}"


@dataclass
class Node:
    index: int
    ns: Netns
    data_dir: Path

    @property
    def v4(self) -> str:
        return underlay_v4(self.index)

    @property
    def v6(self) -> str:
        return underlay_v6(self.index)

    def ipam(self, v6: bool = True) -> dict[str, Any]:
        """host-local with this node's own slice of the shared pod subnets and its own dataDir."""
        lo, hi = 10 * self.index + 10, 10 * self.index + 19
        ranges = [[{"subnet": POD_V4, "rangeStart": f"10.77.0.{lo}", "rangeEnd": f"10.77.0.{hi}"}]]
        if v6:
            ranges.append([{"subnet": POD_V6, "rangeStart": f"fd77::{lo:x}", "rangeEnd": f"fd77::{hi:x}"}])
        return {"type": "host-local", "dataDir": str(self.data_dir), "ranges": ranges}


@dataclass
class Pod:
    ns: Netns
    node: Node
    container_id: str
    conf: dict[str, Any]
    result: dict[str, Any] | None = None

    def ip(self, version: int = 4) -> str:
        assert self.result is not None
        for entry in self.result.get("ips", []):
            addr = ipaddress.ip_interface(entry["address"])
            if addr.version == version:
                return str(addr.ip)
        raise AssertionError(f"pod has no IPv{version} address: {self.result}")

    @property
    def mac(self) -> str:
        return str(self.ns.links()["eth0"]["address"])


@dataclass
class Cluster:
    underlay: Netns
    nodes: list[Node]
    cni: Runner
    make_netns: Callable[..., Netns]
    pods: list[Pod] = field(default_factory=list)
    _ids: int = 0

    def conf(self, vni: int, node: Node | None = None, ipam: bool = True, **extra: Any) -> dict[str, Any]:
        """A vxlan config for `node`: remotes are every node's VTEP (our own is skipped by the plugin)."""
        conf: dict[str, Any] = {"cniVersion": "1.1.0", "name": f"ovl{vni}", "type": "vxlan", "vni": vni}
        if "group" not in extra:
            conf["remotes"] = [n.v4 for n in self.nodes]
        if ipam and node is not None:
            conf["ipam"] = node.ipam()
        conf.update(extra)
        return conf

    def run(
        self,
        command: str,
        node: Node,
        conf: dict[str, Any],
        pod: Netns | None = None,
        container_id: str | None = "ctr",
        netns: str | None = None,
    ) -> Outcome:
        path = netns if netns is not None else (pod.path if pod else None)
        return self.cni(
            "vxlan",
            command,
            conf,
            netns=path,
            container_id=container_id,
            ifname="eth0",
            netns_exec=node.ns.name,
        )

    def add_pod(self, node: Node, conf: dict[str, Any], address: str | None = None) -> Pod:
        """ADD a pod on `node`; with an L2-only config, `address` is put on eth0 by hand."""
        self._ids += 1
        pod = Pod(self.make_netns("vxp"), node, f"ctr{self._ids}", conf)
        pod.result = self.run("ADD", node, conf, pod.ns, pod.container_id).ok()
        if address is not None:
            pod.ns.run("ip", "addr", "add", address, "dev", "eth0")
            pod.result = {"ips": [{"address": address}]}
        self.pods.append(pod)
        return pod

    def delete_pod(self, pod: Pod) -> Outcome:
        return self.run("DEL", pod.node, pod.conf, pod.ns, pod.container_id)


def build_cluster(make_netns: Callable[..., Netns], cni: Runner, data_root: Path, nodes: int = 3) -> Cluster:
    underlay = make_netns("vxu")
    underlay.run("ip", "link", "add", UNDERLAY_BRIDGE, "type", "bridge", "mcast_snooping", "0")
    underlay.run("ip", "link", "set", UNDERLAY_BRIDGE, "up")
    members = []
    for i in range(nodes):
        node = Node(i, make_netns("vxn"), data_root / f"node{i}")
        port = f"n{i}"
        underlay.run("ip", "link", "add", port, "type", "veth", "peer", "name", UPLINK, "netns", node.ns.name)
        underlay.run("ip", "link", "set", port, "master", UNDERLAY_BRIDGE, "up")
        node.ns.run("ip", "addr", "add", f"{node.v4}/24", "dev", UPLINK)
        node.ns.run("ip", "addr", "add", f"{node.v6}/64", "dev", UPLINK, "nodad")
        node.ns.run("ip", "link", "set", UPLINK, "up")
        members.append(node)
    return Cluster(underlay, members, cni, make_netns)


@contextmanager
def capture(ns: Netns, ifname: str) -> Iterator[socket.socket]:
    """A packet socket on `ifname` inside `ns`, open before the traffic it should see is sent.

    The socket stays bound to the namespace it was created in, so the test thread leaves the
    namespace at once and reads later; no sniffer thread, no start-up race.
    """
    with cni_netns.entered(ns.path):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((ifname, 0))
    try:
        yield sock
    finally:
        sock.close()


def frames(sock: socket.socket, until: Callable[[bytes], bool], timeout: float = 5.0) -> list[bytes]:
    """Frames read from `sock` until one satisfies `until` or the deadline passes."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        got.append(data)
        if until(data):
            break
    return got
