"""bridge plugin, exec'd as a runtime does, inside a node namespace, with real packets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.bridge.conftest import DUAL_STACK
from tests.helpers.cni import ALL_SPEC_VERSIONS, Outcome, Runner, has_interfaces
from tests.helpers.netns import Netns
from tests.helpers.poll import wait_until

ConfFactory = Callable[..., dict[str, Any]]
MakeNetns = Callable[..., Netns]


def add(
    cni: Runner,
    node: Netns,
    pod: Netns,
    conf: dict[str, Any],
    cid: str | None = None,
    ifname: str = "eth0",
    env: dict[str, str] | None = None,
) -> Outcome:
    return cni(
        "bridge",
        "ADD",
        conf,
        netns=pod.path,
        container_id=cid or pod.name,
        ifname=ifname,
        netns_exec=node.name,
        env=env,
    )


def delete(
    cni: Runner,
    node: Netns,
    pod: Netns | None,
    conf: dict[str, Any],
    cid: str,
    ifname: str = "eth0",
    env: dict[str, str] | None = None,
) -> Outcome:
    return cni(
        "bridge",
        "DEL",
        conf,
        netns=pod.path if pod else "",
        container_id=cid,
        ifname=ifname,
        env=env,
        netns_exec=node.name,
    )


def pod_ips(result: dict[str, Any]) -> list[str]:
    return [ip["address"].split("/")[0] for ip in result["ips"]]


def leases(conf: dict[str, Any]) -> list[str]:
    """Allocated addresses, read from host-local's store files (not through the plugin)."""
    net_dir = Path(conf["ipam"]["dataDir"]) / conf["name"]
    if not net_dir.is_dir():
        return []
    return sorted(p.name for p in net_dir.iterdir() if p.name[0].isdigit() or ":" in p.name)


def host_veths(node: Netns) -> set[str]:
    return {name for name in node.link_names() if name.startswith("veth")}


MASQ_TABLE = "cni_plugins_masquerade"


def nft_masq_rules(node: Netns) -> list[str]:
    """Per-pod masquerade rules in the reference's nftables format (`table inet cni_plugins_masquerade`)."""
    out = node.run("nft", "list", "ruleset")
    return [line.strip() for line in out.splitlines() if "masquerade" in line and ", net: " in line]


def iptables_masq_rules(node: Netns) -> list[str]:
    """Per-pod masquerade chains and rules in the reference's iptables format (`CNI-` chains)."""
    out = node.run("iptables-save", "-t", "nat")
    return [line for line in out.splitlines() if 'name: \\"' in line or line.startswith(":CNI-")]


@pytest.mark.parametrize("version", ALL_SPEC_VERSIONS)
def test_add_and_del_every_spec_version(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, bridge_name: str, version: str
) -> None:
    pod = make_netns("pod")
    conf = conf_factory(version)
    out = add(cni, node, pod, conf).ok()
    assert out["cniVersion"] == version
    if has_interfaces(version):
        names = [i["name"] for i in out["interfaces"]]
        assert names[0] == bridge_name and names[1].startswith("veth") and names[2] == "eth0"
        assert out["interfaces"][2]["sandbox"] == pod.path
        assert all(ip["interface"] == 2 for ip in out["ips"])
        address = out["ips"][0]["address"]
    else:
        address = out["ip4"]["ip"]
    assert address in pod.addrs("eth0")
    assert leases(conf) == [address.split("/")[0]]
    delete(cni, node, pod, conf, pod.name).ok()
    assert "eth0" not in pod.link_names()
    assert leases(conf) == [] and host_veths(node) == set()


def test_two_pods_ping_each_other_dual_stack_and_the_host_reaches_them(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, bridge_name: str
) -> None:
    conf = conf_factory(ranges=DUAL_STACK, isDefaultGateway=True)
    pods = [make_netns("pod") for _ in range(2)]
    results = [add(cni, node, p, conf).ok() for p in pods]
    a, b = (pod_ips(r) for r in results)
    assert [ip.count(":") > 0 for ip in a] == [False, True]
    assert pods[0].ping(b[0]) and pods[0].ping(b[1])  # IPv4 and IPv6 across the bridge
    assert pods[1].ping(a[0]) and pods[1].ping(a[1])
    assert node.ping(a[0]) and node.ping(a[1])  # the node via the gateway address on the bridge
    assert "10.244.8.1/24" in node.addrs(bridge_name)
    default = [r for r in pods[0].routes() if r["dst"] == "default"]
    assert default and default[0]["gateway"] == "10.244.8.1"
    for p in pods:
        delete(cni, node, p, conf, p.name).ok()


def test_mtu_and_hairpin_are_applied(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, bridge_name: str
) -> None:
    pod = make_netns("pod")
    out = add(cni, node, pod, conf_factory(mtu=1380, hairpinMode=True)).ok()
    assert pod.links()["eth0"]["mtu"] == 1380
    host_side = node.links()[out["interfaces"][1]["name"]]
    assert host_side["mtu"] == 1380
    assert host_side["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert node.links()[bridge_name]["mtu"] == 1380  # set when the bridge is created


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_masquerade_rules_exist_after_add_and_are_gone_after_del(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, backend: str
) -> None:
    rules = nft_masq_rules if backend == "nftables" else iptables_masq_rules
    conf = conf_factory(ipMasq=True, ipMasqBackend=backend, ranges=DUAL_STACK)
    pods = [make_netns("pod") for _ in range(2)]
    for p in pods:
        add(cni, node, p, conf).ok()
    assert len(rules(node)) >= 2
    delete(cni, node, pods[0], conf, pods[0].name).ok()
    remaining = rules(node)
    assert remaining and len(remaining) < len(rules(node)) + 1
    delete(cni, node, pods[1], conf, pods[1].name).ok()
    assert rules(node) == []
    assert MASQ_TABLE not in node.run("nft", "list", "tables"), "no empty table outlives the last pod"


def test_the_default_masquerade_backend_is_iptables_where_its_tools_exist(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    """As the reference plugins and the runtimes beside them choose: one backend per node."""
    conf = conf_factory(ipMasq=True)
    pod = make_netns("pod")
    add(cni, node, pod, conf).ok()
    assert iptables_masq_rules(node) != [] and nft_masq_rules(node) == []
    delete(cni, node, pod, conf, pod.name).ok()
    assert iptables_masq_rules(node) == []


def test_nftables_is_the_default_where_only_nft_exists(
    direct: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, tmp_path: Path
) -> None:
    only_nft = tmp_path / "only-nft"
    only_nft.mkdir()
    for tool in ("nft", "ip"):  # `ip netns exec` runs the plugin in the node
        (only_nft / tool).symlink_to(shutil.which(tool) or f"/usr/sbin/{tool}")
    env = {"PATH": str(only_nft)}
    conf = conf_factory(ipMasq=True)
    pod = make_netns("pod")
    add(direct, node, pod, conf, env=env).ok()
    assert nft_masq_rules(node) != [] and iptables_masq_rules(node) == []
    delete(direct, node, pod, conf, pod.name, env=env).ok()
    assert nft_masq_rules(node) == [] and MASQ_TABLE not in node.run("nft", "list", "tables")


def failing_tools(directory: Path, names: tuple[str, ...], stderr: str) -> dict[str, str]:
    """Executables `names` that print `stderr` and exit 1; the env that puts them first on PATH."""
    directory.mkdir(exist_ok=True)
    for name in names:
        tool = directory / name
        tool.write_text(f"#!/bin/sh\ncat >&2 <<'EOF'\n{stderr}\nEOF\nexit 1\n")
        tool.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


@pytest.fixture
def direct(bin_dir: Path) -> Runner:
    """The plugins exec'd directly, so a PATH in the request reaches them (a daemon keeps its own)."""
    return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"})


NFT_DENIED = "netlink: Error: cache initialization failed: Operation not permitted"


def test_del_reports_a_failing_nft_and_leaves_the_rules_for_a_retry(
    direct: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, tmp_path: Path
) -> None:
    pod = make_netns("pod")
    conf = conf_factory(ipMasq=True, ipMasqBackend="nftables")
    add(direct, node, pod, conf).ok()
    denied = failing_tools(tmp_path / "fakebin", ("nft",), NFT_DENIED)
    out = delete(direct, node, pod, conf, pod.name, env=denied)
    assert out.code != 0, out.stdout
    assert "masquerade teardown" in out.json["msg"] and "Operation not permitted" in out.json["msg"]
    assert nft_masq_rules(node) != []
    delete(direct, node, pod, conf, pod.name).ok()
    assert nft_masq_rules(node) == []


def test_gc_reports_a_failing_nft(
    direct: Runner, node: Netns, conf_factory: ConfFactory, tmp_path: Path
) -> None:
    denied = failing_tools(tmp_path / "fakebin", ("nft",), NFT_DENIED)
    gc_conf = {**conf_factory(ipMasq=True), "cni.dev/valid-attachments": []}
    out = direct("bridge", "GC", gc_conf, container_id=None, ifname=None, env=denied, netns_exec=node.name)
    assert out.code != 0 and "Operation not permitted" in out.json["msg"], out.stdout


def test_del_and_gc_without_any_rule_table_succeed(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    """No table or chain of ours exists on this node yet: nft's ENOENT means "no rules"."""
    assert "pycni" not in node.run("nft", "list", "tables")
    conf = conf_factory(ipMasq=True, macspoofchk=True)
    pod = make_netns("pod")
    delete(cni, node, pod, conf, pod.name).ok()
    gc_conf = {**conf, "cni.dev/valid-attachments": []}
    out = cni("bridge", "GC", gc_conf, container_id=None, ifname=None, netns_exec=node.name)
    assert out.code == 0, out.stdout


@pytest.mark.parametrize(
    ("stderr", "fails"),
    [
        ("iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied", True),
        ("Table `nat' does not exist", False),
        (
            "iptables-save v1.8.9 (legacy): Cannot initialize: Table does not exist (do you need to insmod?)",
            False,
        ),
    ],
)
def test_a_failing_iptables_save_is_an_error_unless_the_nat_table_is_missing(
    direct: Runner,
    node: Netns,
    make_netns: MakeNetns,
    conf_factory: ConfFactory,
    tmp_path: Path,
    stderr: str,
    fails: bool,
) -> None:
    env = failing_tools(tmp_path / "fakebin", ("iptables-save", "ip6tables-save"), stderr)
    pod = make_netns("pod")
    out = delete(direct, node, pod, conf_factory(ipMasq=True), pod.name, env=env)
    if fails:
        assert out.code != 0 and "Permission denied" in out.json["msg"], out.stdout
    else:
        assert out.code == 0, out.stdout


def test_check_passes_after_add_and_fails_when_the_interface_is_gone(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    pod = make_netns("pod")
    conf = conf_factory()
    result = add(cni, node, pod, conf).ok()
    checked = {**conf, "prevResult": result}
    ok = cni("bridge", "CHECK", checked, netns=pod.path, container_id=pod.name, netns_exec=node.name)
    assert ok.code == 0 and ok.stdout == ""
    pod.run("ip", "link", "del", "eth0")
    bad = cni("bridge", "CHECK", checked, netns=pod.path, container_id=pod.name, netns_exec=node.name)
    assert bad.code != 0 and "eth0" in bad.json["msg"]


def test_l2_only_check_does_not_call_ipam(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    pod = make_netns("pod")
    conf = {k: v for k, v in conf_factory().items() if k != "ipam"} | {"ipam": {}, "isGateway": False}
    result = add(cni, node, pod, conf).ok()
    assert "ips" not in result
    out = cni(
        "bridge",
        "CHECK",
        {**conf, "prevResult": result},
        netns=pod.path,
        container_id=pod.name,
        netns_exec=node.name,
    )
    assert out.code == 0, out.stdout


def test_del_after_the_netns_is_gone_frees_ip_and_rules(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    pod = make_netns("pod")
    conf = conf_factory(ipMasq=True)
    add(cni, node, pod, conf).ok()
    path = pod.path
    subprocess.run(["ip", "netns", "del", pod.name], check=True)
    assert not os.path.exists(path)
    gone = Netns(pod.name)
    delete(cni, node, gone, conf, pod.name).ok()
    assert leases(conf) == [] and nft_masq_rules(node) == []
    # the kernel destroys the pod's veth (and so its host end) when it frees the netns, asynchronously
    wait_until(lambda: host_veths(node) == set(), what="the host end of the pod veth to go")
    delete(cni, node, gone, conf, pod.name).ok()  # and again
    delete(cni, node, None, conf, pod.name).ok()  # and with CNI_NETNS empty


def test_failure_after_ipam_leaves_nothing_behind(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, bridge_name: str
) -> None:
    node.run("ip", "link", "add", bridge_name, "type", "bridge")
    node.run("ip", "addr", "add", "10.99.0.1/24", "dev", bridge_name)  # conflicts with our gateway
    pod = make_netns("pod")
    conf = conf_factory(ipMasq=True)
    out = add(cni, node, pod, conf)
    assert out.code != 0 and "already has an IP address" in out.json["msg"]
    assert leases(conf) == [] and host_veths(node) == set() and pod.link_names() == {"lo"}
    assert nft_masq_rules(node) == []
    forced = add(cni, node, pod, conf_factory(forceAddress=True)).ok()
    assert forced["ips"][0]["gateway"] in {a.split("/")[0] for a in node.addrs(bridge_name)}


def test_existing_ifname_is_refused_without_taking_an_address(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    pod = make_netns("pod")
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    conf = conf_factory()
    out = add(cni, node, pod, conf)
    assert out.code != 0 and "already exists" in out.json["msg"]
    assert leases(conf) == []


def test_thirty_two_parallel_pods(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, bridge_name: str
) -> None:
    conf = conf_factory(ipMasq=True)
    pods = [make_netns("pod") for _ in range(32)]
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda p: add(cni, node, p, conf), pods))
    ips = [pod_ips(r.ok())[0] for r in results]
    assert len(set(ips)) == 32
    assert len(host_veths(node)) == 32
    assert pods[0].ping(ips[31]) and pods[31].ping(ips[0]) and node.ping(ips[15])
    with ThreadPoolExecutor(32) as pool:
        outs = list(pool.map(lambda p: delete(cni, node, p, conf, p.name), pods))
    assert all(o.code == 0 for o in outs), [o.stdout for o in outs if o.code]
    assert host_veths(node) == set() and leases(conf) == []
    assert nft_masq_rules(node) == [] and iptables_masq_rules(node) == []


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_gc_removes_stale_rules_and_addresses_and_keeps_valid_ones(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory, backend: str
) -> None:
    conf = conf_factory(ipMasq=True, ipMasqBackend=backend)
    keep, lose = make_netns("pod"), make_netns("pod")
    kept_ip = pod_ips(add(cni, node, keep, conf).ok())[0]
    add(cni, node, lose, conf).ok()
    valid = [{"containerID": keep.name, "ifname": "eth0"}]
    gc_conf = {**conf, "cni.dev/valid-attachments": valid}
    out = cni("bridge", "GC", gc_conf, container_id=None, ifname=None, netns_exec=node.name)
    assert out.code == 0, out.stdout
    assert leases(conf) == [kept_ip]
    if backend == "nftables":
        rules = nft_masq_rules(node)
        assert len(rules) == 1 and kept_ip in rules[0]
    else:
        jumps = [r for r in iptables_masq_rules(node) if r.startswith("-A POSTROUTING")]
        assert len(jumps) == 1 and f"-s {kept_ip}/32" in jumps[0]


def test_status_passes_through_to_ipam(cni: Runner, node: Netns, conf_factory: ConfFactory) -> None:
    out = cni("bridge", "STATUS", conf_factory(), container_id=None, ifname=None, netns_exec=node.name)
    assert out.code == 0, out.stdout
    bad = conf_factory()
    bad["ipam"]["type"] = "no-such-ipam"
    out = cni("bridge", "STATUS", bad, container_id=None, ifname=None, netns_exec=node.name)
    assert out.code != 0 and "no-such-ipam" in out.json["msg"]


def test_mac_capability_sets_the_pod_mac(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    pod = make_netns("pod")
    conf = conf_factory(runtimeConfig={"mac": "0a:58:0a:f4:07:99"})
    out = add(cni, node, pod, conf).ok()
    assert pod.links()["eth0"]["address"] == "0a:58:0a:f4:07:99" == out["interfaces"][2]["mac"]


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"hairpinMode": True, "promiscMode": True}, "hairpin"),
        ({"vlan": 5000}, "vlan"),
        ({"vlanTrunk": [{"minID": 9}]}, "minID"),
        ({"disableContainerInterface": True}, "disableContainerInterface"),
        ({"mtu": "big"}, "mtu"),
    ],
)
def test_invalid_config_is_code_7_naming_the_key(
    cni: Runner,
    node: Netns,
    make_netns: MakeNetns,
    conf_factory: ConfFactory,
    keys: dict[str, Any],
    words: str,
) -> None:
    pod = make_netns("pod")
    out = add(cni, node, pod, conf_factory(**keys))
    assert out.code != 0 and out.json["code"] == 7 and words.lower() in out.json["msg"].lower()


def _bridge_vlan_filtering_supported(node: Netns) -> bool:
    probe = "vlanprobe0"
    proc = subprocess.run(
        ["ip", "-n", node.name, "link", "add", probe, "type", "bridge", "vlan_filtering", "1"],
        capture_output=True,
        check=False,
    )
    subprocess.run(["ip", "-n", node.name, "link", "del", probe], capture_output=True, check=False)
    return proc.returncode == 0


def test_vlan_port_is_tagged(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    if not _bridge_vlan_filtering_supported(node):
        pytest.skip("this kernel refuses bridge vlan_filtering (EOPNOTSUPP): VLAN options cannot run here")
    pod = make_netns("pod")
    out = add(cni, node, pod, conf_factory(vlan=100, vlanTrunk=[{"id": 200}])).ok()
    veth = out["interfaces"][1]["name"]
    vlans = json.loads(node.run("bridge", "-j", "vlan", "show", "dev", veth))
    vids = {v["vlan"] for entry in vlans for v in entry["vlans"]}
    assert {100, 200} <= vids and 1 not in vids


def test_vlan_on_a_kernel_without_filtering_is_a_clear_error(
    cni: Runner, node: Netns, make_netns: MakeNetns, conf_factory: ConfFactory
) -> None:
    if _bridge_vlan_filtering_supported(node):
        pytest.skip("this kernel supports bridge VLAN filtering; the refusal path cannot be shown")
    pod = make_netns("pod")
    conf = conf_factory(vlan=100)
    out = add(cni, node, pod, conf)
    assert out.code != 0 and "VLAN filtering" in out.json["msg"]
    assert leases(conf) == [] and pod.link_names() == {"lo"}
