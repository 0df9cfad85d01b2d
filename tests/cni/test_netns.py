"""The netns helper: threads enter and leave namespaces without crossing each other."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from pycni.net import netns
from tests.helpers.netns import Netns

SELF = "/proc/thread-self/ns/net"


def inode(path: str) -> int:
    return os.stat(path).st_ino


def test_sixteen_threads_at_once_stay_in_their_own_namespace(make_netns: Callable[..., Netns]) -> None:
    spaces = [make_netns("pyth") for _ in range(16)]
    expected = {ns.path: inode(ns.path) for ns in spaces}
    home = inode(SELF)
    barrier = threading.Barrier(16)

    def work(ns: Netns) -> tuple[int, int, set[str], int]:
        with netns.entered(ns.path):
            barrier.wait(timeout=30)  # all 16 are inside at the same moment
            inside = inode(SELF)
            with netns.rtnl(ns.path) as ipr:
                names = {link.get("ifname") for link in ipr.pyroute2().get_links()}
            again = inode(SELF)
        return inside, again, names, inode(SELF)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, spaces))
    for ns, (inside, again, names, after) in zip(spaces, results, strict=True):
        assert inside == expected[ns.path] == again
        assert names == {"lo"}
        assert after == home
    assert inode(SELF) == home


def test_rtnl_sees_the_target_namespace_and_leaves_the_thread_home(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns()
    ns.run("ip", "link", "add", "pv0", "type", "veth", "peer", "name", "pv1")
    home = inode(SELF)
    with netns.rtnl(ns.path) as ipr:
        assert inode(SELF) == home
        names = {link.get("ifname") for link in ipr.pyroute2().get_links()}
    assert names == {"lo", "pv0", "pv1"}


def test_missing_path_is_netns_gone_and_a_file_is_not_a_netns(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(netns.NetnsGone):
        netns.open_netns("/run/netns/does-not-exist-xyz")
    plain = os.path.join(tmp_path, "f")
    open(plain, "w").close()
    with pytest.raises(netns.NotANetns):
        netns.open_netns(plain)


def test_thread_is_restored_when_the_block_raises(make_netns: Callable[..., Netns]) -> None:
    ns = make_netns()
    home = inode(SELF)
    with pytest.raises(RuntimeError), netns.entered(ns.path):
        assert inode(SELF) == inode(ns.path)
        raise RuntimeError("inside")
    assert inode(SELF) == home


def test_temporary_netns_is_empty_and_separate() -> None:
    home = inode(SELF)
    with netns.temporary() as fd, netns.rtnl(fd) as ipr:
        assert {link.get("ifname") for link in ipr.pyroute2().get_links()} == {"lo"}
        assert os.fstat(fd).st_ino != home
    assert inode(SELF) == home
