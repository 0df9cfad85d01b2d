"""Differential tests against the reference host-local (Debian 1.1.1 at /usr/lib/cni).

Same requests to both, each on its own store: same answers and byte-identical stores. Then
both on one store, taking turns, to show either binary can take over the other's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cni import Outcome, Runner
from tests.ipam.conftest import Net

REFERENCE = Path("/usr/lib/cni/host-local")

pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason="reference host-local not installed")


@pytest.fixture
def ref(net: Net, tmp_path: Path) -> Net:
    """The reference binary on its own dataDir."""
    return Net(Runner(REFERENCE.parent), tmp_path / "ref-data", net.name)


def answer(out: Outcome) -> Any:
    """What a runtime takes from an outcome: the result (empty dns = none), or failure and message."""
    data = out.json
    if out.code != 0:
        return ("error", data["msg"])
    if isinstance(data, dict) and data.get("dns") == {}:
        del data["dns"]
    return data


def store_of(net: Net) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(net.dir.iterdir()) if p.name != "lock"}


SCRIPT: list[tuple[str, str, str, str | None]] = [
    ("ADD", "a", "eth0", None),
    ("ADD", "b", "eth0", "IP=10.99.0.5"),
    ("ADD", "c", "eth0", None),
    ("ADD", "c", "net1", None),
    ("DEL", "b", "eth0", None),
    ("ADD", "d", "eth0", None),
    ("CHECK", "c", "eth0", None),
    ("DEL", "a", "eth0", None),
    ("DEL", "a", "eth0", None),
    ("CHECK", "a", "eth0", None),
    ("ADD", "e", "eth0", "IP=10.99.0.6"),
    ("ADD", "f", "eth0", "IP=10.99.0.1"),
    ("ADD", "g", "eth0", "IP=192.168.9.9"),
    ("ADD", "h", "eth0", None),
    ("ADD", "i", "eth0", None),
    ("ADD", "j", "eth0", None),
]


@pytest.mark.parametrize("cni_version", ["0.2.0", "0.3.1", "0.4.0", "1.0.0"])
def test_same_requests_same_answers_same_store(net: Net, ref: Net, cni_version: str) -> None:
    ranges = [[{"subnet": "10.99.0.0/29"}], [{"subnet": "fd00:99::/120", "rangeStart": "fd00:99::10"}]]
    ours_conf = net.conf(cni_version, ranges=ranges, routes=[{"dst": "0.0.0.0/0"}])
    ref_conf = ref.conf(cni_version, ranges=ranges, routes=[{"dst": "0.0.0.0/0"}])
    for command, cid, ifname, args in SCRIPT:
        if command == "CHECK" and cni_version < "0.4.0":
            continue
        ours = net.run(command, ours_conf, container_id=cid, ifname=ifname, cni_args=args)
        theirs = ref.run(command, ref_conf, container_id=cid, ifname=ifname, cni_args=args)
        assert answer(ours) == answer(theirs), (command, cid, ifname, args)
    assert store_of(net) == store_of(ref)


def test_errors_match_the_reference_wording(net: Net, ref: Net) -> None:
    cases = [
        [[{"subnet": "10.0.0.0/31"}]],
        [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]],
        [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]],
        [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]],
        [],
    ]
    for ranges in cases:
        ours, theirs = net.run("ADD", net.conf(ranges=ranges)), ref.run("ADD", ref.conf(ranges=ranges))
        assert ours.code != 0 and theirs.code != 0
        assert ours.json["msg"] == theirs.json["msg"]


def test_either_binary_continues_the_others_store(net: Net) -> None:
    ref = Net(Runner(REFERENCE.parent), net.data_dir, net.name)  # the same store
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/24"}]])
    first = ref.run("ADD", conf, container_id="from-ref").ok()
    ours = net.run("ADD", conf, container_id="from-us").ok()
    assert ours["ips"][0]["address"] == "10.99.0.3/24"  # continues the reference's round robin
    assert net.run("ADD", conf, container_id="from-ref").ok()["ips"] == first["ips"]  # its lease, found
    ref.run("CHECK", conf, container_id="from-us").ok()
    again = ref.run("ADD", conf, container_id="from-us")
    assert "duplicate allocation" in again.json["msg"]  # the reference sees our reservation
    net.run("DEL", conf, container_id="from-ref").ok()  # we release what it reserved
    ref.run("DEL", conf, container_id="from-us").ok()  # it releases what we reserved
    assert net.reservations() == {}
    theirs = ref.run("ADD", conf, container_id="late").ok()
    assert net.run("ADD", conf, container_id="late").ok()["ips"] == theirs["ips"]  # index follows its writes
    assert net.run("ADD", conf, container_id="next").ok()["ips"][0]["address"] == "10.99.0.5/24"
