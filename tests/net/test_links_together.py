"""`links.delete_links_together`: a netns's links deleted in one kernel batch, failures returned."""

from __future__ import annotations

from typing import Any

import pytest
from pyroute2.netlink.rtnl import RTM_DELLINK

from pycni.net import links, netns
from tests.helpers.netns import Netns


def veths(pod: Netns, *names: str) -> None:
    for name in names:
        pod.run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p")


def groups(pod: Netns) -> dict[str, int]:
    return {
        name: int(str(link.get("group", 0)).replace("default", "0")) for name, link in pod.links().items()
    }


def test_links_go_in_one_request_and_no_other_link_does(
    make_netns: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod: Netns = make_netns("ltg")
    veths(pod, "v0", "v1", "v2", "keep0", "keep1")
    pod.run("ip", "link", "set", "keep1", "group", "77")
    with netns.rtnl(pod.path) as ipr:
        deletes: list[Any] = []
        change = ipr.nl.change

        def counted(msg: Any, kind: int, flags: int = 0) -> None:
            if kind == RTM_DELLINK:
                deletes.append(msg)
            change(msg, kind, flags)

        monkeypatch.setattr(ipr.nl, "change", counted)
        failures = links.delete_links_together(ipr, ["v0", "v1", "gone", "v2"])
    assert failures == [None, None, None, None]
    assert len(deletes) == 1, "one batch, one kernel wait"
    assert pod.link_names() == {"lo", "keep0", "keep0p", "keep1", "keep1p"}
    assert groups(pod)["keep1"] == 77 and groups(pod)["keep0"] == 0


def test_a_batch_the_kernel_refuses_is_deleted_one_by_one_and_what_stays_is_as_it_was(
    make_netns: Any,
) -> None:
    pod: Netns = make_netns("ltg")
    veths(pod, "v0", "v1")
    pod.run("ip", "link", "set", "lo", "group", "5")
    with netns.rtnl(pod.path) as ipr:
        failures = links.delete_links_together(ipr, ["v0", "lo", "v1"])  # lo cannot be deleted
    assert failures[0] is None and failures[2] is None and failures[1] is not None
    assert pod.link_names() == {"lo"}
    assert groups(pod)["lo"] == 5, "its group back"


def test_one_link_is_one_plain_delete(make_netns: Any) -> None:
    pod: Netns = make_netns("ltg")
    veths(pod, "v0")
    with netns.rtnl(pod.path) as ipr:
        assert links.delete_links_together(ipr, ["v0"]) == [None]
        assert links.delete_links_together(ipr, ["v0"]) == [None]
        assert links.delete_links_together(ipr, []) == []
    assert pod.link_names() == {"lo"}
