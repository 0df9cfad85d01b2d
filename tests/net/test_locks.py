"""Lock files: removed by their holder when named after a pod, and one request per attachment at a time."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pycni import registry
from pycni.cni import locks
from pycni.cni.errors import TryAgainLater
from pycni.cni.runtime import Command, RuntimeArgs
from pycni.libcni.delegate import ExecDelegate
from pycni.meta_multus.guards import pod_lock
from pycni.net import lock
from tests.daemon.probe_plugin import PROBE, read_record
from tests.daemon.process import install_probe
from tests.helpers.poll import wait_until

NETNS = "/run/netns/none"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once some thread naps in a lock's wait loop: it found the lock taken."""
    waited = threading.Event()
    real = locks.nap

    def nap(delay: float) -> None:
        waited.set()
        real(delay)

    monkeypatch.setattr(locks, "nap", nap)
    return waited


@pytest.fixture
def probe_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.PLUGINS, PROBE.type, PROBE)


def lock_files(run_dir: Path) -> list[str]:
    directory = run_dir / "locks"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_a_removable_lock_leaves_no_file_and_a_waiter_locks_the_file_named_now(
    run_dir: Path, waits: threading.Event
) -> None:
    path = locks.lock_path(run_dir, "pod", "ctr-a")
    order: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        with locks.flock(path, remove=True):
            waiter = pool.submit(_hold, path, order)
            assert waits.wait(30), "the second taker never found the lock taken"
            order.append("first")
        waiter.result(timeout=30)
    assert order == ["first", "second"]
    assert lock_files(run_dir) == []


def _hold(path: Path, order: list[str]) -> None:
    with locks.flock(path, timeout=30, remove=True):
        # the first holder unlinked the file it held: we hold the one the path names now
        assert path.exists()
        order.append("second")


def test_a_kept_lock_file_stays(run_dir: Path) -> None:
    """Files other programs lock too (host-local's, go-filemutex's) are never removed."""
    path = run_dir / "locks" / "shared.lock"
    with locks.flock(path):
        pass
    assert path.exists()


def test_the_multus_pod_lock_leaves_no_file(run_dir: Path) -> None:
    from pycni.cni.plugin import Context
    from pycni.cni.settings import Settings

    ctx = Context(delegate=ExecDelegate(), settings=Settings(run_dir=run_dir))
    for i in range(5):
        with pod_lock(ctx, f"pod-{i}"):
            assert len(lock_files(run_dir)) == 1
    assert lock_files(run_dir) == []


def test_a_transient_resource_lock_times_out_with_code_11(run_dir: Path) -> None:
    with (
        lock.transient(run_dir, "pod", "x"),
        pytest.raises(TryAgainLater, match="pod x"),
        lock.transient(run_dir, "pod", "x", 0.05, "pod x"),
    ):
        pass
    assert lock_files(run_dir) == []


def probe_env(run_dir: Path, command: str, **extra: str) -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "ctr-a",
        "CNI_NETNS": NETNS,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
        "PYCNI_RUN_DIR": str(run_dir),
        **extra,
    }


def probe_stdin(record: Path, **extra: Any) -> bytes:
    conf = {"cniVersion": "1.0.0", "name": "probe-net", "type": "probe", "record": str(record), **extra}
    return json.dumps(conf).encode()


def run_probe(env: dict[str, str], stdin: bytes) -> tuple[int, str]:
    out = io.StringIO()
    code = registry.run("probe", env, io.BytesIO(stdin), out)
    return code, out.getvalue()


@pytest.mark.usefixtures("probe_type")
def test_a_del_waits_for_the_add_of_its_attachment(
    tmp_path: Path, run_dir: Path, waits: threading.Event
) -> None:
    """The race operators hit: the ADD is still at work when the runtime's DEL arrives."""
    record, release = tmp_path / "record", tmp_path / "release"
    with ThreadPoolExecutor(2) as pool:
        added = pool.submit(
            run_probe, probe_env(run_dir, "ADD"), probe_stdin(record, hold_until=str(release))
        )
        wait_until(lambda: read_record(record), what="the ADD to be at work")
        deleted = pool.submit(run_probe, probe_env(run_dir, "DEL"), probe_stdin(record))
        assert waits.wait(30), "the DEL never waited for the lock"
        assert [line[0] for line in read_record(record)] == ["ADD"], "the DEL ran beside the ADD"
        release.touch()
        assert added.result(timeout=60)[0] == 0
        assert deleted.result(timeout=60) == (0, "")
    assert [line[0] for line in read_record(record)] == ["ADD", "DEL"]
    assert lock_files(run_dir) == []


@pytest.mark.usefixtures("probe_type")
def test_other_attachments_do_not_wait(tmp_path: Path, run_dir: Path) -> None:
    record, release = tmp_path / "record", tmp_path / "release"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(run_probe, probe_env(run_dir, "ADD"), probe_stdin(record, hold_until=str(release)))
        wait_until(lambda: read_record(record), what="the ADD to be at work")
        try:
            for env in (
                probe_env(run_dir, "DEL", CNI_IFNAME="net1"),
                probe_env(run_dir, "DEL", CNI_CONTAINERID="ctr-b"),
                probe_env(run_dir, "STATUS"),
            ):
                assert run_probe(env, probe_stdin(record, cniVersion="1.1.0")) == (0, "")
            assert run_probe(probe_env(run_dir, "DEL"), probe_stdin(record, name="other-net"))[0] == 0
        finally:
            release.touch()
        assert held.result(timeout=60)[0] == 0


@pytest.mark.usefixtures("probe_type")
def test_a_request_that_cannot_get_its_attachment_in_time_is_try_again_later(
    tmp_path: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "ATTACHMENT_TIMEOUT", 0.05)
    rt = RuntimeArgs(Command.ADD, "ctr-a", NETNS, "eth0")
    with locks.attachment(run_dir, rt, {"name": "probe-net"}):
        code, out = run_probe(probe_env(run_dir, "DEL"), probe_stdin(tmp_path / "record"))
    assert code == 1
    err = json.loads(out)
    assert err["code"] == 11 and "attachment probe-net/ctr-a/eth0" in err["msg"]
    assert read_record(tmp_path / "record") == []


@pytest.fixture
def probe_bin(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "bin"
    path.mkdir()
    install_probe(path)
    yield path


def test_our_own_executable_exec_d_by_the_holder_does_not_wait_for_it(
    tmp_path: Path, run_dir: Path, probe_bin: Path
) -> None:
    """A delegate exec'd for the request that holds the lock (ours, not in-process) runs at once."""
    record = tmp_path / "record"
    env = {"PATH": "/usr/bin:/bin", "PYCNI_DAEMON": "off", "PYCNI_RUN_DIR": str(run_dir)}
    rt = RuntimeArgs(Command.ADD, "ctr-a", NETNS, "eth0", path=(str(probe_bin),), env=env)
    conf = json.loads(probe_stdin(record))
    with locks.attachment(run_dir, rt, conf) as held:
        ExecDelegate().call("probe", conf, held.with_command(Command.DEL))
        # a nested request of another attachment takes that one's lock, and its own children see both
        other = {**conf, "name": "inner-net"}
        with locks.attachment(run_dir, held, other) as inner:
            assert inner.env[locks.HELD_ENV].split(",") == [
                locks.lock_path(run_dir, "attachment", n).name
                for n in ("probe-net\0ctr-a\0eth0", "inner-net\0ctr-a\0eth0")
            ]
    assert [line[0:3] for line in read_record(record)] == [["DEL", "ctr-a", "direct"]]
    assert lock_files(run_dir) == []


def test_many_removable_lockers_stay_mutually_exclusive(run_dir: Path) -> None:
    """The unlink-then-recheck pattern under contention: no update of the count is ever lost."""
    path = locks.lock_path(run_dir, "pod", "busy")
    count = [0]

    def one(_: int) -> None:
        with locks.flock(path, timeout=60, remove=True):
            seen = count[0]
            time.sleep(0)  # let another thread in here if the lock let it
            count[0] = seen + 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(400)))
    assert count[0] == 400
    assert lock_files(run_dir) == []
