"""podman 4.3's CNI backend drives our bridge + host-local ahead of the Go reference's portmap,
firewall and tuning (the conflist `podman network create` writes), so our results reach real
Go plugins through prevResult; the same with the reference alone is the control."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from pycni.net.netns import entered
from tests.e2e.conftest import BUSYBOX_IMAGE, PLUGIN_SETS, E2eNode, MakePodman
from tests.e2e.leftovers import Node
from tests.helpers.netns import unique
from tests.helpers.poll import wait_until
from tests.helpers.timings import Timings

PORT = 18080
#: The node's address on the network's bridge (podman's gateway), where the port is published.
GATEWAY = "10.203.0.1"
SERVER = "while true; do echo hello | nc -l -p 8080; done"


def hello_from(node: E2eNode, address: str) -> bytes:
    """What the published port answers to a connection from the node itself."""
    with entered(node.ns.path):
        try:
            with socket.create_connection((address, PORT), timeout=3) as conn:
                return conn.recv(64)
        except OSError:
            return b""


@pytest.mark.parametrize("plugins", PLUGIN_SETS)
def test_two_containers_talk_a_published_port_answers_and_removal_leaves_nothing(
    make_podman: MakePodman, e2e_node: E2eNode, plugins: str, timings: Timings
) -> None:
    podman = make_podman(plugins)
    net = unique("pm", 12)
    podman("network", "create", "--subnet", "10.203.0.0/24", net)
    conflist = json.loads((podman.work / "net.d" / f"{net}.conflist").read_text())
    assert [p["type"] for p in conflist["plugins"]] == ["bridge", "portmap", "firewall", "tuning"]

    started = time.monotonic()
    podman(
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        net,
        "-p",
        f"{PORT}:8080",
        BUSYBOX_IMAGE,
        "sh",
        "-c",
        SERVER,
    )
    podman("run", "-d", "--name", "cli", "--network", net, BUSYBOX_IMAGE)
    start_two = time.monotonic() - started
    server = podman.address("srv", net)
    assert server.startswith("10.203.0.")
    assert "1 packets received" in podman("exec", "cli", "ping", "-c1", "-W2", server)
    wait_until(
        lambda: hello_from(e2e_node, "10.203.0.1") == b"hello\n", timeout=30.0, what="the published port"
    )
    sandboxes = [podman.inspect(c)["NetworkSettings"]["SandboxKey"] for c in ("srv", "cli")]
    ids = [podman.inspect(c)["Id"] for c in ("srv", "cli")]

    started = time.monotonic()
    podman("stop", "--time", "1", "srv", "cli")
    podman("rm", "srv", "cli")
    stop_two = time.monotonic() - started
    timings.add("podman: run 2 containers", plugins, [start_two])
    timings.add("podman: stop + rm 2 containers", plugins, [stop_two])

    leftovers = Node(e2e_node.ns, Path("/var/lib/cni/networks"), Path("/run/pycni"))
    assert leftovers.veths() == []
    assert [r for r in leftovers.reservations() if r.startswith(f"{net}/")] == []
    assert leftovers.rules() == []
    assert [p for p in sandboxes if Path(p).exists()] == []
    assert hello_from(e2e_node, GATEWAY) == b""
    results = [p.name for p in Path("/var/lib/cni/results").glob(f"{net}-*")]
    assert [r for r in results if any(i in r for i in ids)] == []
