"""Conflists mixing our plugins and the Debian Go plugins in one chain: ADD, CHECK and DEL in
every result version the Go plugins speak (0.1.0 to 1.0.0; `bandwidth` from 0.3.0, `firewall`
from 0.4.0, as their VERSION says; CHECK from 0.4.0), prevResult handed across the two sides
both ways, run by a runtime (`pycni exec`, libcni's semantics: prevResult chaining, DEL in
reverse, the result cache), and the node as before.

- our `bridge` (+ our host-local), then the reference's `portmap`, `firewall`, `tuning`, `bandwidth`;
- the reference's `bridge` with our `host-local` as its IPAM, then the reference's `portmap`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netns import Netns, unique
from tests.helpers.poll import wait_until
from tests.migration.node import assert_as_before, bin_dir_of, go_plugins_installed, snapshot

CHAIN_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
CAPABILITIES = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}],
                "bandwidth": {"ingressRate": 8000000, "ingressBurst": 100000}}  # fmt: skip


def conflist(version: str, data: Path, bridge: str, tail: list[dict[str, Any]]) -> dict[str, Any]:
    # dual stack: the Debian portmap's CHECK looks for its IPv6 chain whatever the pod's families
    ranges = [[{"subnet": "10.234.0.0/24"}], [{"subnet": "fd00:234::/64"}]]
    ipam = {"type": "host-local", "dataDir": str(data / "ipam"), "ranges": ranges}
    head = {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "ipam": ipam}
    return {"cniVersion": version, "name": "mixed-net", "plugins": [head, *tail]}


def go_tail(version: str) -> list[dict[str, Any]]:
    """The Go meta plugins that speak `version` (their VERSION: firewall 0.4.0+, bandwidth 0.3.0+)."""
    tail: list[dict[str, Any]] = [{"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]
    if version in ("0.4.0", "1.0.0"):
        tail.append({"type": "firewall"})
    tail.append({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}})
    if version not in ("0.1.0", "0.2.0"):
        tail.append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    return tail


def first_ipv4(result: dict[str, Any]) -> str:
    """The pod's IPv4 address in a result of any version (0.1.0/0.2.0: `ip4.ip`)."""
    if "ip4" in result:
        return str(result["ip4"]["ip"])
    return str(next(ip["address"] for ip in result["ips"] if "." in ip["address"]))


def run(
    node: Netns,
    verb: str,
    conf_file: Path,
    pod: Netns,
    cid: str,
    ifname: str,
    bins: Path,
    data: Path,
    env: dict[str, str],
) -> Any:
    argv = [sys.executable, "-m", "pycni", "exec", verb, "--conf", str(conf_file), "--netns", pod.path]
    argv += ["--ifname", ifname, "--container-id", cid, "--cache-dir", str(data / "cache")]
    argv += ["--cni-path", str(bins), "--exec-plugins", "--capability-args", json.dumps(CAPABILITIES)]
    done = subprocess.run(
        ["ip", "netns", "exec", node.name, *argv], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{verb}: {done.stdout} {done.stderr}"
    return json.loads(done.stdout) if done.stdout.strip() else None


def without_portmap(conf: dict[str, Any], tmp_path: Path) -> Path:
    """The chain for CHECK less the Debian portmap, whose CHECK (1.1.1) looks for its IPv4 rules
    in the IPv6 table and fails in any chain (`test_control_the_reference_portmap_check_fails`)."""
    path = tmp_path / "check.conflist"
    path.write_text(json.dumps({**conf, "plugins": [p for p in conf["plugins"] if p["type"] != "portmap"]}))
    return path


def test_control_the_reference_portmap_check_fails(
    node: Netns, make_netns: Any, data: Path, tmp_path: Path
) -> None:
    """An all-Go chain (bridge, host-local, portmap) fails its own CHECK in portmap."""
    conf = conflist("1.0.0", data, unique("mbr", 12), go_tail("1.0.0")[:1])
    conf_file = tmp_path / "go.conflist"
    conf_file.write_text(json.dumps(conf))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    pod = make_netns("mpod")
    go_bin = Path("/usr/lib/cni")
    run(node, "add", conf_file, pod, "ctl-ctr", "eth0", go_bin, data, env)
    with pytest.raises(AssertionError, match="could not check ipv6 dnat"):
        run(node, "check", conf_file, pod, "ctl-ctr", "eth0", go_bin, data, env)
    run(node, "del", conf_file, pod, "ctl-ctr", "eth0", go_bin, data, env)


@pytest.mark.parametrize("version", CHAIN_VERSIONS)
@pytest.mark.parametrize("chain", ["our-bridge+go-meta", "go-bridge+our-host-local"])
def test_mixed_chain(
    node: Netns, make_netns: Any, data: Path, tmp_path: Path, bin_dir: Path, chain: str, version: str
) -> None:
    if not go_plugins_installed("portmap", "firewall", "tuning", "bandwidth"):
        pytest.skip("the Debian meta plugins are not installed")
    go_meta = ("portmap", "firewall", "tuning", "bandwidth")
    if chain == "our-bridge+go-meta":
        bins = bin_dir_of(tmp_path / "bin", bin_dir, ("bridge", "host-local"), go_meta)
        conf = conflist(version, data, unique("mbr", 12), go_tail(version))
    else:
        bins = bin_dir_of(tmp_path / "bin", bin_dir, ("host-local",), ("bridge", *go_meta))
        conf = conflist(version, data, unique("mbr", 12), go_tail(version)[:1])
    conf_file = tmp_path / "mixed.conflist"
    conf_file.write_text(json.dumps(conf))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYCNI_DAEMON": "off"}
    env |= {"PYCNI_STATE_DIR": str(data / "state"), "PYCNI_RUN_DIR": str(tmp_path / "run")}
    pod, keeper = make_netns("mpod"), make_netns("mpod")
    run(
        node, "add", conf_file, keeper, "keeper", "eth0", bins, data, env
    )  # the node's shared chains, made once
    wait_until(lambda: not node.ip("-6", "addr", "show", "tentative"), what="DAD on the node")
    before = snapshot(node, pod, data)
    result = run(node, "add", conf_file, pod, "mixed-ctr", "eth0", bins, data, env)
    assert result["cniVersion"] == version and first_ipv4(result).startswith("10.234.0.")
    assert "18080" in node.run("iptables-save", "-t", "nat")
    if version in ("0.4.0", "1.0.0"):
        run(node, "check", without_portmap(conf, tmp_path), pod, "mixed-ctr", "eth0", bins, data, env)
    run(node, "del", conf_file, pod, "mixed-ctr", "eth0", bins, data, env)
    assert_as_before(before, snapshot(node, pod, data))
    run(node, "del", conf_file, keeper, "keeper", "eth0", bins, data, env)
