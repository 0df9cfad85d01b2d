"""Many writers at once, and writers killed between two steps of a write."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from pycni.cni.env_names import HOST_LOCAL_CRASH_AT as CRASH_AT_ENV
from tests.ipam.conftest import Net

PARALLEL = 64


def test_64_concurrent_adds_then_adds_racing_dels(net: Net) -> None:
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd00:99::/120"}]])
    with ThreadPoolExecutor(PARALLEL) as pool:
        outs = list(pool.map(lambda i: net.run("ADD", conf, container_id=f"c{i}"), range(PARALLEL)))
    results = [o.ok() for o in outs]
    addrs = [ip["address"] for r in results for ip in r["ips"]]
    assert len(addrs) == len(set(addrs)) == 2 * PARALLEL
    files = net.reservations()
    assert len(files) == 2 * PARALLEL
    for i, r in enumerate(results):
        for ip in r["ips"]:
            assert files[ip["address"].split("/")[0]] == f"c{i}\r\neth0".encode()

    jobs = [("DEL", f"c{i}") for i in range(0, PARALLEL, 2)] + [
        ("ADD", f"n{i}") for i in range(PARALLEL // 2)
    ]
    with ThreadPoolExecutor(PARALLEL) as pool:
        for out in pool.map(lambda job: net.run(job[0], conf, container_id=job[1]), jobs):
            out.ok()
    owners = sorted(v.decode().split("\r\n")[0] for v in net.reservations().values())
    survivors = [f"c{i}" for i in range(1, PARALLEL, 2)] + [f"n{i}" for i in range(PARALLEL // 2)]
    assert owners == sorted(survivors * 2)  # one address per range set each, nothing else


CRASH_POINTS = [
    "reserve-partial",  # reservation content half written to its temp file
    "reserve-linked",  # first address file in place; last_reserved, second set and index not yet
    "last-reserved-partial",  # last_reserved_ip temp half written
    "index-partial",  # a shard temp half written
    "index-before-stamp",  # shards written, stamp not yet
    "stamp-partial",  # the stamp temp half written
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_add_killed_mid_write_leaves_a_store_the_next_add_reads_correctly(net: Net, point: str) -> None:
    conf = net.conf(ranges=[[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd00:99::/120"}]])
    bystander = net.run("ADD", conf, container_id="bystander").ok()

    killed = net.run("ADD", conf, container_id="victim", env={CRASH_AT_ENV: point})
    assert killed.code == -signal.SIGKILL

    whole = {b"bystander\r\neth0", b"victim\r\neth0"}
    assert set(net.reservations().values()) <= whole, "a reservation file is partial"
    retried = net.run("ADD", conf, container_id="victim").ok()
    victim_files = sorted(k for k, v in net.reservations().items() if v == b"victim\r\neth0")
    assert victim_files == sorted(
        ip["address"].split("/")[0] for ip in retried["ips"]
    )  # no leak, no duplicate
    other = net.run("ADD", conf, container_id="other").ok()
    taken = [ip["address"] for r in (bystander, retried, other) for ip in r["ips"]]
    assert len(taken) == len(set(taken)) == 6

    for cid in ("victim", "other", "bystander"):
        net.run("DEL", conf, container_id=cid).ok()
    assert net.reservations() == {}


def test_del_killed_before_the_index_is_updated(net: Net) -> None:
    conf = net.conf()
    net.run("ADD", conf, container_id="a").ok()
    assert (
        net.run("DEL", conf, container_id="a", env={CRASH_AT_ENV: "index-before-stamp"}).code
        == -signal.SIGKILL
    )
    assert net.reservations() == {}
    result = net.run("ADD", conf, container_id="a").ok()
    assert result["ips"][0]["address"] == "10.99.0.3/24"  # a fresh lease, not a stale index entry


def test_empty_file_left_by_a_crashed_reference_writer_is_skipped(net: Net) -> None:
    conf = net.conf()
    net.dir.mkdir(parents=True)
    (net.dir / "10.99.0.2").write_bytes(b"")
    assert net.run("ADD", conf).ok()["ips"][0]["address"] == "10.99.0.3/24"
