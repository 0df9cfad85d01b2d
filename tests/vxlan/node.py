"""A one-node overlay for the validate-first and partial-state tests: an uplink with an address.

The uplink is a veth whose peer stays in the node (no dummy driver needed); a remote on its
subnet is routed through it, so the plugin finds it as the underlay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.netns import Netns

UPLINK = "up0"
LOCAL = "192.0.2.1"
REMOTE = "192.0.2.2"


def with_uplink(node: Netns) -> Netns:
    """No IPv6 link-local addresses: their DAD ends at any time and would change the node's routes."""
    node.run("ip", "link", "add", UPLINK, "type", "veth", "peer", "name", "up0peer")
    for name in (UPLINK, "up0peer"):
        node.run("ip", "link", "set", name, "addrgenmode", "none")
    node.run("ip", "addr", "add", f"{LOCAL}/24", "dev", UPLINK)
    node.run("ip", "link", "set", "up0peer", "up")
    node.run("ip", "link", "set", UPLINK, "up")
    return node


def vxlan_conf(vni: int, data: Path, **keys: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": f"ovl{vni}",
        "type": "vxlan",
        "vni": vni,
        "remotes": [REMOTE],
        "ipam": {
            "type": "host-local",
            "dataDir": str(data / "ipam"),
            "ranges": [[{"subnet": "10.251.0.0/24"}]],
        },
        **keys,
    }


def overlay_links(node: Netns) -> set[str]:
    return {name for name in node.link_names() if name.startswith("vx")}
