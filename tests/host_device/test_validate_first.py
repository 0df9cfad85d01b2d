"""host-device refuses, before it claims or moves anything, what it can know will fail: an
invalid ipam section, a result its cniVersion cannot carry; DEL treats a CNI_NETNS that is
not a netns as a netns that is gone.

Exec'd as an operator would (`PYCNI_DAEMON=off`), so stderr is the plugin's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns
from tests.host_device.helpers import Node, conf, install_ipam_stand_in, link

INVALID_IPAM: dict[str, dict[str, Any]] = {
    "host-local ranges null": {"type": "host-local", "ranges": None},
    "host-local gateway x": {"type": "host-local", "ranges": [[{"subnet": "10.252.0.0/24", "gateway": "x"}]]},
    "type traversal": {"type": "../../bin/sh"},
    "type absolute": {"type": "/bin/true"},
    "type is the plugin": {"type": "host-device"},
}


@pytest.fixture
def node(make_netns: Callable[..., Netns], bin_dir: Path, tmp_path: Path) -> Node:
    """A node like the package's fixture, with the executables run directly (no daemon)."""
    env = {
        "CNI_PATH": f"{bin_dir}:{install_ipam_stand_in(tmp_path)}",
        "PYCNI_STATE_DIR": str(tmp_path / "state"),
        "PYCNI_RUN_DIR": str(tmp_path / "run"),
        "PYCNI_SYSFS_ROOT": str(tmp_path / "sys"),
        "PYCNI_DAEMON": "off",
    }
    (tmp_path / "sys").mkdir()
    runner = Runner(bin_dir)
    return Node(make_netns("hdn"), make_netns("hds"), lambda: make_netns("hdp"), runner, tmp_path, env)


def assert_clean_error(out: Outcome, code: int) -> None:
    assert out.code != 0 and out.error_code == code, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr


def assert_untouched(node: Node, pod: Netns, dev: str) -> None:
    assert link(node.ns, dev) is not None, "the device left the node"
    assert pod.link_names() == {"lo"}
    assert node.state_files() == []


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_an_add_without_ipam_whose_result_cannot_be_printed_moves_nothing(node: Node, version: str) -> None:
    dev = node.stand_in()
    pod = node.pod()
    out = node.cni("ADD", conf(version, device=dev), pod)
    assert_clean_error(out, 1)
    assert "must carry an IP address" in out.json["msg"]
    assert_untouched(node, pod, dev)


@pytest.mark.parametrize("case", sorted(INVALID_IPAM))
def test_an_invalid_ipam_section_is_refused_before_the_device_moves(node: Node, case: str) -> None:
    dev = node.stand_in()
    pod = node.pod()
    cfg = conf(device=dev)
    cfg["ipam"] = {"dataDir": str(node.tmp / "ipam"), **INVALID_IPAM[case]}
    assert_clean_error(node.cni("ADD", cfg, pod), 7)
    assert_untouched(node, pod, dev)
    assert_clean_error(node.cni("DEL", cfg, pod), 7)
    gc = {**cfg, "cni.dev/valid-attachments": []}
    assert_clean_error(node.cni("GC", gc, None, container_id="", ifname=""), 7)


def test_del_with_a_netns_path_that_is_not_a_netns_releases_ipam_and_succeeds(node: Node) -> None:
    dev = node.stand_in()
    pod = node.pod()
    cfg = conf(ipam={}, device=dev)
    node.cni("ADD", cfg, pod).ok()
    regular = node.tmp / "not-a-netns"
    regular.write_text("")

    out = node.cni("DEL", cfg, None, netns=str(regular))
    assert out.code == 0, (out.stdout, out.stderr)
    assert "is not a network namespace" in out.stderr and "Traceback" not in out.stderr
    assert [c["cmd"] for c in node.ipam_calls()] == ["ADD", "DEL"]
    assert node.cni("DEL", cfg, None, netns=str(regular)).code == 0, "DEL stays idempotent"


def test_add_refuses_a_netns_path_that_is_not_a_netns(node: Node) -> None:
    dev = node.stand_in()
    regular = node.tmp / "not-a-netns"
    regular.write_text("")
    assert_clean_error(node.cni("ADD", conf(ipam={}, device=dev), None, netns=str(regular)), 4)
    assert link(node.ns, dev) is not None and node.state_files() == []
    assert node.ipam_calls() == []
