"""sriov refuses, before it touches a VF, what it can know will fail (an invalid ipam section, a
result its cniVersion cannot carry); DEL treats a CNI_NETNS that is not a netns as a netns
that is gone: PF side restored, IPAM released, success.

Exec'd as an operator would (`PYCNI_DAEMON=off`), so stderr is the plugin's own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import Outcome, Runner
from tests.helpers.netns import Netns
from tests.sriov.helpers import SriovNode, conf, make_node, seeded_state

APPLIED: dict[str, Any] = {"mac": "0a:58:00:00:00:61", "vlan": 301, "spoofchk": "on"}
INVALID_IPAM: dict[str, dict[str, Any]] = {
    "ranges null": {"type": "host-local", "ranges": None},
    "type traversal": {"type": "../../bin/sh"},
    "type absolute": {"type": "/bin/true"},
    "type is the plugin": {"type": "sriov"},
}


@pytest.fixture
def node(make_netns: Callable[..., Netns], bin_dir: Path, tmp_path: Path) -> SriovNode:
    return make_node(make_netns, Runner(bin_dir, extra_env={"PYCNI_DAEMON": "off"}), bin_dir, tmp_path)


def assert_clean_error(out: Outcome, code: int) -> None:
    assert out.code != 0 and out.error_code == code, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr


def assert_untouched(node: SriovNode, pod: Netns, index: int, netdev: str) -> None:
    assert node.pf_entry(node.kernel_vfs[index]) == seeded_state(node.kernel_vfs[index].index)
    assert node.link(netdev) is not None and pod.link_names() == {"lo"}
    assert node.state_files() == [] and node.reservations() == []


@pytest.mark.parametrize("case", sorted(INVALID_IPAM))
def test_an_invalid_ipam_section_is_refused_before_the_vf_is_touched(node: SriovNode, case: str) -> None:
    vf = node.kernel_vfs[0]
    pod = node.pod()
    cfg = conf(vf, node=node, **APPLIED)
    cfg["ipam"] = {**cfg["ipam"], **INVALID_IPAM[case]}
    assert_clean_error(node.cni("ADD", cfg, pod), 7)
    assert_untouched(node, pod, 0, vf.netdev or "")
    assert_clean_error(node.cni("DEL", cfg, pod), 7)


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_an_add_without_ipam_whose_result_cannot_be_printed_touches_nothing(
    node: SriovNode, version: str
) -> None:
    vf = node.kernel_vfs[1]
    pod = node.pod()
    assert_clean_error(node.cni("ADD", conf(vf, version, ipam=False, **APPLIED), pod), 1)
    assert_untouched(node, pod, 1, vf.netdev or "")


def test_del_with_a_netns_path_that_is_not_a_netns_restores_the_node_side(node: SriovNode) -> None:
    vf = node.kernel_vfs[2]
    pod = node.pod()
    cfg = conf(vf, node=node, **APPLIED)
    node.cni("ADD", cfg, pod).ok()
    assert node.reservations() != []
    regular = node.tmp / "not-a-netns"
    regular.write_text("")

    out = node.cni("DEL", cfg, None, netns=str(regular))
    assert out.code == 0, (out.stdout, out.stderr)
    assert "is not a network namespace" in out.stderr and "Traceback" not in out.stderr
    assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.reservations() == []
    assert node.cni("DEL", cfg, None, netns=str(regular)).code == 0, "DEL stays idempotent"
