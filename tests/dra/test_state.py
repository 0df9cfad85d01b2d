"""Where the driver keeps its checkpoint and how a call reads its claims: the checkpoint out of
the directories the event loop watches, moved from where older drivers kept it, and the claims
of one call read from the API server at once."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

from pycni.dra import checkpoint
from pycni.dra.checkpoint import PreparedClaim, PreparedDevice
from pycni.dra.claims import ClaimRef
from pycni.dra.devices import DraDevice
from pycni.dra.inventory import Inventory
from pycni.dra.options import Options
from pycni.dra.prepare import FETCH_THREADS, Preparer
from tests.dra.test_units import DRIVER, NODE, POOL, claim, device


def held_by(uid: str, name: str) -> dict[str, PreparedClaim]:
    dev = PreparedDevice(requests=["vf"], pool=NODE, device="d1", cdi_ids=[f"x/vf={uid}-d1"])
    return {uid: PreparedClaim(namespace="ns", name=name, devices=[dev])}


def test_the_checkpoint_is_in_no_directory_the_event_loop_watches(tmp_path: Path) -> None:
    """Its writes (link, exchange, unlink) would wake the loop during every Prepare."""
    opts = Options(tmp_path / "conf" / "config.json", NODE, plugins_dir=tmp_path / "plugins",
                   registry_dir=tmp_path / "registry")  # fmt: skip
    assert opts.plugin_socket.parent.absolute() in opts.watched_dirs()
    assert opts.checkpoint_path.parent.absolute() not in opts.watched_dirs()
    assert opts.legacy_checkpoint_path.parent == opts.plugin_dir


def test_a_checkpoint_where_older_drivers_kept_it_is_moved_and_wins(tmp_path: Path) -> None:
    legacy, path = tmp_path / "checkpoint.json", tmp_path / "state" / "checkpoint.json"
    checkpoint.adopt(legacy, path)  # nothing to move
    assert not path.exists()
    checkpoint.save(path, held_by("u0", "before-the-downgrade"), durable=True)
    checkpoint.save(legacy, held_by("u1", "web"), durable=True)
    checkpoint.adopt(legacy, path)
    assert not legacy.exists() and checkpoint.load(path) == held_by("u1", "web")
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700


def test_the_checkpoint_is_written_into_its_spare_file_and_the_names_swapped(tmp_path: Path) -> None:
    """No file is made or removed per write (each cost ms on a busy ext4), and a reader never sees
    part of one: the old content is whole in the spare until the next write."""
    path = tmp_path / "state" / "checkpoint.json"
    spare = checkpoint.spare_path(path)
    checkpoint.save(path, held_by("u0", "first"), durable=True)
    checkpoint.save(path, held_by("u1", "second"), durable=False)
    inodes = {path.stat().st_ino, spare.stat().st_ino}
    spare.chmod(0o644)
    for n in range(2, 5):
        reader = path.open("rb")
        checkpoint.save(path, held_by(f"u{n}", "next"), durable=n % 2 == 0)
        assert checkpoint.load(path) == held_by(f"u{n}", "next")
        assert json.loads(reader.read())["claims"].keys() == {f"u{n - 1}"}
        reader.close()
        assert {path.stat().st_ino, spare.stat().st_ino} == inodes
        assert sorted(p.name for p in path.parent.iterdir()) == [spare.name, path.name]
    assert path.stat().st_mode & 0o777 == 0o600 and spare.stat().st_mode & 0o777 == 0o600
    checkpoint.save(path, held_by("u5", "a-long-name" * 20), durable=False)
    checkpoint.save(path, held_by("u6", "a-long-name" * 20), durable=False)
    checkpoint.save(path, held_by("u7", "short"), durable=False)  # over the longer u5: its tail cut
    assert checkpoint.load(path) == held_by("u7", "short")


def test_the_claims_of_one_call_are_read_from_the_api_server_at_once(tmp_path: Path) -> None:
    devs = {f"d{i}": DraDevice(f"d{i}", device(f"0000:3b:02.{i}"), POOL) for i in range(FETCH_THREADS)}
    uids = {f"c{i}": str(uuid.uuid4()) for i in range(FETCH_THREADS)}
    together = threading.Barrier(FETCH_THREADS, timeout=5)  # broken (an error) if read one by one

    def fetch(namespace: str, name: str) -> dict[str, object]:
        together.wait()
        index = name.removeprefix("c")
        return claim([{"request": "vf", "driver": DRIVER, "pool": NODE, "device": f"d{index}"}], uids[name])

    preparer = Preparer(DRIVER, NODE, tmp_path / "cdi", tmp_path / "cp" / "checkpoint.json",
                        lambda: devs, fetch)  # fmt: skip
    refs = [ClaimRef("ns", name, uid) for name, uid in uids.items()]
    out = preparer.prepare([*refs, refs[0]])  # a claim named twice is read once
    assert {uid: o.error for uid, o in out.items()} == {uid: "" for uid in uids.values()}
    assert set(json.loads((tmp_path / "cp" / "checkpoint.json").read_text())["claims"]) == set(uids.values())


def test_health_streams_wake_for_a_changed_report_not_for_every_claim() -> None:
    inventory = Inventory()
    devices = {"d1": DraDevice("d1", device("0000:3b:02.0"), POOL)}
    assert inventory.update(devices, frozenset(), frozenset())
    version = inventory.snapshot()[0]
    assert not inventory.update(devices, frozenset(), frozenset({"d1"}))  # prepared: same report
    assert inventory.snapshot()[1].prepared == {"d1"}  # yet what Prepare and /metrics read is new
    assert inventory.update(devices, frozenset(), frozenset({"d1", "d9"}))  # d9 left: Unhealthy
    assert inventory.update(devices, frozenset({"d9"}), frozenset({"d1", "d9"}))  # now Unknown
    assert not inventory.update(devices, frozenset({"d5", "d9"}), frozenset({"d1", "d9"}))
    assert not inventory.wait_change(inventory.snapshot()[0], timeout=0)
    assert inventory.snapshot()[0] == version + 2
