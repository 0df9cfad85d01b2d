"""32 pods racing for 16 VFs: never one VF in two pods, and everything restored at the end."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.cni import Runner
from tests.helpers.netns import Netns
from tests.sriov.helpers import SriovNode, conf, make_node, seeded_state, stand_in_mac

VFS = 16
PODS = 32
ROUNDS = 2


@pytest.fixture
def big_node(make_netns: Callable[..., Netns], cni: Runner, bin_dir: Path, tmp_path: Path) -> SriovNode:
    return make_node(make_netns, cni, bin_dir, tmp_path, kernel_vfs=VFS, vfio_vfs=0)


def test_parallel_add_del_never_gives_one_vf_to_two_pods(big_node: SriovNode) -> None:
    node = big_node
    pods = [node.pod() for _ in range(PODS)]
    vfs = node.kernel_vfs
    held: list[tuple[int, float, float]] = []  # (VF index, owned from, owned until)
    failures: list[str] = []
    record = threading.Lock()

    def cfg(i: int) -> dict[str, object]:
        return conf(vfs[i % VFS], node=node, runtimeConfig={"mac": f"0a:58:00:00:01:{i:02x}"}, vlan=i)

    def churn(i: int) -> None:
        for round_ in range(ROUNDS):
            cid = f"ctr-{i}-{round_}"
            out = node.cni("ADD", cfg(i), pods[i], container_id=cid)
            if out.code == 0:
                start = time.monotonic()
                link = pods[i].links().get("net1")
                if link is None or link["address"] != f"0a:58:00:00:01:{i:02x}":
                    failures.append(f"pod {i} got {link}")
                end = time.monotonic()
                with record:
                    held.append((i % VFS, start, end))
            elif out.json["code"] not in (11, 100):
                failures.append(f"pod {i}: {out.stdout}")
            node.cni("DEL", cfg(i), pods[i], container_id=cid).ok()

    with ThreadPoolExecutor(PODS) as pool:
        list(pool.map(churn, range(PODS)))

    assert failures == []
    assert held, "no ADD succeeded at all"
    for vf in range(VFS):
        spans = sorted((s, e) for v, s, e in held if v == vf)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end < start, f"VF {vf} was in two pods at once"
    assert_all_home(node)


def test_one_winner_per_vf_when_all_add_at_once(big_node: SriovNode) -> None:
    node = big_node
    pods = [node.pod() for _ in range(PODS)]
    vfs = node.kernel_vfs
    configs = [conf(vfs[i % VFS], node=node) for i in range(PODS)]
    with ThreadPoolExecutor(PODS) as pool:
        outs = list(
            pool.map(lambda i: node.cni("ADD", configs[i], pods[i], container_id=f"c{i}"), range(PODS))
        )

    winners = [i for i, out in enumerate(outs) if out.code == 0]
    assert sorted(i % VFS for i in winners) == list(range(VFS))
    assert all("already allocated" in outs[i].json["msg"] for i in range(PODS) if i not in winners)
    aliases = [str(pods[i].links()["net1"].get("ifalias")) for i in winners]
    assert sorted(aliases) == sorted(str(vf.netdev) for vf in vfs)
    assert all(pods[i].link_names() == {"lo"} for i in range(PODS) if i not in winners)
    assert len(node.reservations()) == VFS

    with ThreadPoolExecutor(PODS) as pool:
        dels = list(
            pool.map(lambda i: node.cni("DEL", configs[i], pods[i], container_id=f"c{i}"), range(PODS))
        )
    assert all(out.code == 0 for out in dels), [out.stdout for out in dels if out.code]
    assert_all_home(node)


def assert_all_home(node: SriovNode) -> None:
    for vf in node.kernel_vfs:
        link = node.link(vf.netdev or "")
        assert link is not None and link["address"] == stand_in_mac(vf.index), vf
        assert node.pf_entry(vf) == seeded_state(vf.index)
    assert node.state_files() == [] and node.reservations() == []
