"""vxlan judges its whole config (the ipam section included) before making any device, and DEL
treats a CNI_NETNS that is not a netns as a netns that is gone.

Exec'd as an operator would (`PYCNI_DAEMON=off`), so stderr is the plugin's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bridge.node_state import differences, snapshot
from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns
from tests.vxlan.node import overlay_links, vxlan_conf, with_uplink

VNI = 4321
INVALID_IPAM: dict[str, dict[str, Any]] = {
    "ranges null": {"ranges": None},
    "gateway x": {"ranges": [[{"subnet": "10.251.0.0/24", "gateway": "x"}]]},
    "overlapping ranges": {"ranges": [[{"subnet": "10.251.0.0/24"}], [{"subnet": "10.251.0.0/25"}]]},
    "type traversal": {"type": "../../bin/sh"},
    "type absolute": {"type": "/bin/true"},
    "type is the plugin": {"type": "vxlan"},
}


@pytest.fixture
def exec_cni(bin_dir: Path, tmp_path: Path) -> Runner:
    return Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off", "PYCNI_RUN_DIR": str(tmp_path / "run")})


@pytest.fixture
def node(make_netns: Callable[..., Netns]) -> Netns:
    return with_uplink(make_netns("vxn"))


def run(cni: Runner, node: Netns, command: str, conf: dict[str, Any], netns: str | None) -> Outcome:
    return cni("vxlan", command, conf, netns=netns, container_id="ctr-v", ifname="eth0", netns_exec=node.name)


def assert_clean_error(out: Outcome, code: int) -> None:
    assert out.code != 0 and out.error_code == code, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("case", sorted(INVALID_IPAM))
def test_an_invalid_ipam_section_is_refused_before_any_device_is_made(
    exec_cni: Runner, node: Netns, make_netns: Callable[..., Netns], tmp_path: Path, case: str
) -> None:
    pod = make_netns("vxp")
    conf = vxlan_conf(VNI, tmp_path, ipMasq=True)
    conf["ipam"] = {**conf["ipam"], **INVALID_IPAM[case]}
    before = snapshot(node, pod, tmp_path / "ipam", rules=True)

    assert_clean_error(run(exec_cni, node, "ADD", conf, pod.path), 7)
    assert overlay_links(node) == set()
    assert differences(before, snapshot(node, pod, tmp_path / "ipam", rules=True)) == []
    assert_clean_error(run(exec_cni, node, "DEL", conf, pod.path), 7)
    gc = {**conf, "cni.dev/valid-attachments": []}
    assert_clean_error(exec_cni("vxlan", "GC", gc, container_id=None, ifname=None, netns_exec=node.name), 7)


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_an_l2_only_add_whose_result_cannot_be_printed_is_refused_first(
    exec_cni: Runner, node: Netns, make_netns: Callable[..., Netns], tmp_path: Path, version: str
) -> None:
    pod = make_netns("vxp")
    conf = vxlan_conf(VNI, tmp_path, cniVersion=version)
    del conf["ipam"]
    assert_clean_error(run(exec_cni, node, "ADD", conf, pod.path), 1)
    assert overlay_links(node) == set() and pod.link_names() == {"lo"}


def test_del_with_a_netns_path_that_is_not_a_netns_cleans_the_node_side(
    exec_cni: Runner, node: Netns, make_netns: Callable[..., Netns], tmp_path: Path
) -> None:
    pod = make_netns("vxp")
    conf = vxlan_conf(VNI, tmp_path, ipMasq=True, ipMasqBackend="nftables")
    before = snapshot(node, pod, tmp_path / "ipam", rules=True)
    run(exec_cni, node, "ADD", conf, pod.path).ok()
    assert snapshot(node, pod, tmp_path / "ipam", rules=True).files != before.files
    regular = tmp_path / "not-a-netns"
    regular.write_text("")

    out = run(exec_cni, node, "DEL", conf, str(regular))
    assert out.code == 0, (out.stdout, out.stderr)
    assert "is not a network namespace" in out.stderr and "Traceback" not in out.stderr
    after = snapshot(node, pod, tmp_path / "ipam", rules=True)
    assert after.files == before.files and after.rules == before.rules


def test_add_refuses_a_netns_path_that_is_not_a_netns(exec_cni: Runner, node: Netns, tmp_path: Path) -> None:
    regular = tmp_path / "not-a-netns"
    regular.write_text("")
    assert_clean_error(run(exec_cni, node, "ADD", vxlan_conf(VNI, tmp_path), str(regular)), 4)
    assert overlay_links(node) == set()
