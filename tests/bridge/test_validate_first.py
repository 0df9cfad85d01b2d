"""bridge judges its whole config (the ipam section included) before touching the kernel, leaves
nothing behind a failed ADD, and DEL treats a CNI_NETNS that is not a netns as a netns that is gone.

Exec'd as an operator would (`PYCNI_DAEMON=off`), so stderr is the plugin's own and can be
checked for tracebacks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bridge.node_state import differences, snapshot
from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns

ConfFactory = Callable[..., dict[str, Any]]

#: `ipam` sections that no ADD can take, each with what it gets wrong.
INVALID_IPAM: dict[str, dict[str, Any]] = {
    "ranges null": {"ranges": None},
    "ranges empty": {"ranges": []},
    "empty range set": {"ranges": [[]]},
    "bad subnet": {"ranges": [[{"subnet": "10.244.300.0/24"}]]},
    "gateway x": {"ranges": [[{"subnet": "10.244.9.0/24", "gateway": "x"}]]},
    "overlapping ranges": {"ranges": [[{"subnet": "10.244.9.0/24"}], [{"subnet": "10.244.9.128/25"}]]},
    "type traversal": {"type": "../../bin/sh"},
    "type absolute": {"type": "/bin/true"},
    "type dot": {"type": "."},
    "type dotdot": {"type": ".."},
    "type unknown": {"type": "no-such-ipam"},
    "type is the plugin": {"type": "bridge"},
}


@pytest.fixture
def exec_cni(bin_dir: Path) -> Runner:
    return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"})


def run(
    cni: Runner, node: Netns, command: str, conf: dict[str, Any], netns: str, cid: str = "ctr-v"
) -> Outcome:
    return cni("bridge", command, conf, netns=netns, container_id=cid, ifname="eth0", netns_exec=node.name)


def assert_clean_error(out: Outcome, code: int) -> None:
    assert out.code != 0 and out.error_code == code, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr


def invalid_ipam_conf(conf_factory: ConfFactory, case: str) -> dict[str, Any]:
    conf = conf_factory(ipMasq=True)
    conf["ipam"] = {**conf["ipam"], **INVALID_IPAM[case]}
    return conf


@pytest.mark.parametrize("case", sorted(INVALID_IPAM))
def test_an_invalid_ipam_section_is_refused_before_anything_is_made(
    exec_cni: Runner,
    node: Netns,
    make_netns: Callable[..., Netns],
    conf_factory: ConfFactory,
    tmp_path: Path,
    case: str,
) -> None:
    pod = make_netns("vfp")
    conf = invalid_ipam_conf(conf_factory, case)
    before = snapshot(node, pod, tmp_path / "ipam", rules=True)

    assert_clean_error(run(exec_cni, node, "ADD", conf, pod.path), 7)
    assert differences(before, snapshot(node, pod, tmp_path / "ipam", rules=True)) == []

    assert_clean_error(run(exec_cni, node, "DEL", conf, pod.path), 7)
    assert_clean_error(
        run(exec_cni, node, "CHECK", {**conf, "prevResult": {"cniVersion": "1.1.0"}}, pod.path), 7
    )
    gc = {**conf, "cni.dev/valid-attachments": []}
    assert_clean_error(exec_cni("bridge", "GC", gc, container_id=None, ifname=None, netns_exec=node.name), 7)


def test_a_failed_add_removes_the_bridge_it_created_and_logs_one_line(
    exec_cni: Runner, node: Netns, make_netns: Callable[..., Netns], conf_factory: ConfFactory, tmp_path: Path
) -> None:
    """host-local refuses an unknown CNI_ARGS key only when called: the veth and the bridge are undone."""
    pod = make_netns("vfp")
    conf = conf_factory(ipMasq=True)
    before = snapshot(node, pod, tmp_path / "ipam", rules=True)
    out = exec_cni(
        "bridge", "ADD", conf, netns=pod.path, container_id="ctr-v", ifname="eth0",
        cni_args="NOPE=1", netns_exec=node.name,
    )  # fmt: skip
    assert_clean_error(out, 4)
    assert differences(before, snapshot(node, pod, tmp_path / "ipam", rules=True)) == []


def test_a_failed_add_leaves_an_existing_bridge_alone(
    exec_cni: Runner,
    node: Netns,
    make_netns: Callable[..., Netns],
    conf_factory: ConfFactory,
    bridge_name: str,
) -> None:
    node.run("ip", "link", "add", bridge_name, "type", "bridge")
    pod = make_netns("vfp")
    out = exec_cni(
        "bridge", "ADD", conf_factory(), netns=pod.path, container_id="ctr-v", ifname="eth0",
        cni_args="NOPE=1", netns_exec=node.name,
    )  # fmt: skip
    assert_clean_error(out, 4)
    assert bridge_name in node.link_names()


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_an_l2_only_add_whose_result_cannot_be_printed_is_refused_first(
    exec_cni: Runner,
    node: Netns,
    make_netns: Callable[..., Netns],
    conf_factory: ConfFactory,
    tmp_path: Path,
    version: str,
) -> None:
    pod = make_netns("vfp")
    conf = conf_factory(version, isGateway=False)
    del conf["ipam"]
    before = snapshot(node, pod, tmp_path / "ipam", rules=False)
    assert_clean_error(run(exec_cni, node, "ADD", conf, pod.path), 1)
    assert differences(before, snapshot(node, pod, tmp_path / "ipam", rules=False)) == []


def test_add_with_a_taken_ifname_leaves_no_bridge_behind(
    exec_cni: Runner,
    node: Netns,
    make_netns: Callable[..., Netns],
    conf_factory: ConfFactory,
    bridge_name: str,
) -> None:
    pod = make_netns("vfp")
    pod.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
    out = run(exec_cni, node, "ADD", conf_factory(), pod.path)
    assert out.code != 0 and "already exists" in out.json["msg"]
    assert bridge_name not in node.link_names()


def test_del_with_a_netns_path_that_is_not_a_netns_cleans_the_node_side(
    exec_cni: Runner, node: Netns, make_netns: Callable[..., Netns], conf_factory: ConfFactory, tmp_path: Path
) -> None:
    """Like a netns that is gone: IPAM released, masquerade rules removed, success, a warning."""
    pod = make_netns("vfp")
    conf = conf_factory(ipMasq=True, ipMasqBackend="nftables")
    before = snapshot(node, pod, tmp_path / "ipam", rules=True)
    run(exec_cni, node, "ADD", conf, pod.path).ok()
    reservations = snapshot(node, pod, tmp_path / "ipam", rules=True)
    assert reservations.files != before.files and reservations.rules != before.rules
    regular = tmp_path / "not-a-netns"
    regular.write_text("")

    out = run(exec_cni, node, "DEL", conf, str(regular))
    assert out.code == 0, (out.stdout, out.stderr)
    assert "is not a network namespace" in out.stderr and "Traceback" not in out.stderr
    after = snapshot(node, pod, tmp_path / "ipam", rules=True)
    assert after.files == before.files and after.rules == before.rules
    assert run(exec_cni, node, "DEL", conf, str(regular)).code == 0, "DEL stays idempotent"


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_add_and_check_refuse_a_netns_path_that_is_not_a_netns(
    exec_cni: Runner, node: Netns, conf_factory: ConfFactory, tmp_path: Path, command: str
) -> None:
    regular = tmp_path / "not-a-netns"
    regular.write_text("")
    conf = conf_factory()
    if command == "CHECK":
        conf["prevResult"] = {"cniVersion": "1.1.0"}
    assert_clean_error(run(exec_cni, node, command, conf, str(regular)), 4)
