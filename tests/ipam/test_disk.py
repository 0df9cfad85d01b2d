"""The on-disk store: the reference's byte format, the index as a trustworthy cache, the lock."""

from __future__ import annotations

import fcntl
import os
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from pycni.cni.errors import TryAgainLater
from pycni.ipam.host_local.disk import DiskStore
from pycni.ipam.host_local.store import Owner
from pycni.net.lock import flock

A = Owner("ctr-a", "eth0")
B = Owner("ctr-b", "net1")
IP1, IP2, IP6 = IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3"), IPv6Address("fd00::10")


@pytest.fixture
def store(tmp_path: Path) -> DiskStore:
    return DiskStore(tmp_path, "net")


def test_reference_format(store: DiskStore) -> None:
    with store.lock():
        assert store.reserve(IP1, A, 0)
        assert store.reserve(IP6, B, 1)
        assert not store.reserve(IP1, B, 0)
    assert sorted(os.listdir(store.net_dir)) == [
        "10.0.0.2", "fd00::10", "last_reserved_ip.0", "last_reserved_ip.1", "lock",
    ]  # fmt: skip
    assert (store.net_dir / "10.0.0.2").read_bytes() == b"ctr-a\r\neth0"
    assert (store.net_dir / "fd00::10").read_bytes() == b"ctr-b\r\nnet1"
    assert (store.net_dir / "last_reserved_ip.0").read_bytes() == b"10.0.0.2"
    assert (store.net_dir / "last_reserved_ip.1").read_bytes() == b"fd00::10"


def test_state_lives_outside_the_network_directory(store: DiskStore, tmp_path: Path) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
    assert store.state_dir == tmp_path / ".pycni" / "net"
    assert (store.state_dir / "index" / "stamp").exists()
    assert not list(store.state_dir.glob("*.tmp"))


def test_held_by_uses_the_index_not_the_files(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
        store.reserve(IP2, B, 0)
    again = DiskStore(store.net_dir.parent, "net")
    with again.lock():
        assert again.held_by("ctr-a") == {IP1: A}
    assert again.index.rebuilds == 0


def test_release_updates_the_index(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
    with store.lock():
        store.release(IP1)
        store.release(IP1)  # already free: fine
    fresh = DiskStore(store.net_dir.parent, "net")
    with fresh.lock():
        assert fresh.held_by("ctr-a") == {}
    assert fresh.index.rebuilds == 0


def test_a_file_created_by_another_writer_invalidates_the_index(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
    (store.net_dir / "10.0.0.9").write_bytes(b"ctr-a\r\nnet9")  # what the Go binary would do
    fresh = DiskStore(store.net_dir.parent, "net")
    with fresh.lock():
        assert fresh.held_by("ctr-a") == {IP1: A, IPv4Address("10.0.0.9"): Owner("ctr-a", "net9")}
    assert fresh.index.rebuilds == 1


def test_a_file_removed_by_another_writer_invalidates_the_index(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
        store.reserve(IP2, A, 0)
    (store.net_dir / "10.0.0.2").unlink()
    fresh = DiskStore(store.net_dir.parent, "net")
    with fresh.lock():
        assert fresh.held_by("ctr-a") == {IP2: A}


def test_missing_stamp_forces_a_rebuild(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
    (store.state_dir / "index" / "stamp").unlink()
    for shard in (store.state_dir / "index").iterdir():
        shard.unlink()  # even with every shard gone, the files are the truth
    fresh = DiskStore(store.net_dir.parent, "net")
    with fresh.lock():
        assert fresh.held_by("ctr-a") == {IP1: A}


def test_corrupt_shard_is_rebuilt(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
    for shard in (store.state_dir / "index").glob("??"):
        shard.write_bytes(b"{not json")
    fresh = DiskStore(store.net_dir.parent, "net")
    with fresh.lock():
        assert fresh.held_by("ctr-a") == {IP1: A}


def test_legacy_and_unreadable_files(store: DiskStore) -> None:
    store.net_dir.mkdir(parents=True)
    (store.net_dir / "10.0.0.7").write_bytes(b"old-ctr\n")
    (store.net_dir / "10.0.0.8").write_bytes(b"")
    with store.lock():
        assert store.reservations() == {
            IPv4Address("10.0.0.7"): Owner("old-ctr"),
            IPv4Address("10.0.0.8"): None,
        }
        assert store.held_by("old-ctr") == {IPv4Address("10.0.0.7"): Owner("old-ctr")}
        assert IPv4Address("10.0.0.8") in store.taken()


def test_garbage_last_reserved_is_ignored(store: DiskStore) -> None:
    store.net_dir.mkdir(parents=True)
    (store.net_dir / "last_reserved_ip.0").write_bytes(b"10.0.")
    assert store.last_reserved(0) is None
    assert store.last_reserved(3) is None


def test_taken_is_a_set_of_addresses(store: DiskStore) -> None:
    with store.lock():
        store.reserve(IP1, A, 0)
        store.reserve(IP6, B, 1)
        taken = store.taken()
    assert IP1 in taken and IP6 in taken and IP2 not in taken
    assert set(taken) == {IP1, IP6} and len(taken) == 2


def test_lock_times_out_with_try_again_later(store: DiskStore) -> None:
    store.net_dir.mkdir(parents=True)
    holder = os.open(store.net_dir / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with (
            pytest.raises(TryAgainLater, match="waiting for the lock") as info,
            flock(store.net_dir / "lock", 0.05),
        ):
            pass
        assert info.value.code == 11
    finally:
        os.close(holder)
    with flock(store.net_dir / "lock", 0.05):
        pass


def test_reboot_guard(store: DiskStore) -> None:
    with store.lock():
        assert store.forget_previous_boot("boot-1") == 0  # nothing recorded: nothing released
        store.reserve(IP1, A, 0)
        store.reserve(IP2, B, 0)
    with store.lock():
        assert store.forget_previous_boot("boot-1") == 0
        assert store.held_by("ctr-a") == {IP1: A}
    with store.lock():
        assert store.forget_previous_boot("boot-2") == 2
        assert store.held_by("ctr-a") == {}
        assert store.reserve(IP1, B, 0)
    assert store.recorded_boot_id() == "boot-2"
    assert sorted(os.listdir(store.net_dir)) == ["10.0.0.2", "last_reserved_ip.0", "lock"]
    fresh = DiskStore(store.net_dir.parent, "net")
    with fresh.lock():
        assert fresh.held_by("ctr-b") == {IP1: B}
