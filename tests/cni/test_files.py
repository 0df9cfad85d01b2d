"""`write_atomic`: a reader sees old or new content, and a killed writer leaves no temp file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pycni.cni import files


def test_replaces_content_with_the_mode_asked(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    files.write_atomic(target, b"old")
    files.write_atomic(target, b"new", 0o640)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "sub").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_writer_killed_mid_write_leaves_no_temp_file(tmp_path: Path, durable: bool) -> None:
    """SIGKILL at the sync (or the write), as the soak's kills land: the old content, nothing else."""
    target = tmp_path / "plan.json"
    files.write_atomic(target, b"old")
    pid = os.fork()
    if pid == 0:  # the child dies inside write_atomic, after its data went to the file
        hook = "fsync" if durable else "fchmod"
        setattr(os, hook, lambda *_: os.kill(os.getpid(), signal.SIGKILL))
        try:
            files.write_atomic(target, b"new" * 100_000, durable=durable)
        finally:
            os._exit(3)  # not reached: the kill comes first
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_stale_temp_names_are_removed_by_the_next_write_fresh_ones_kept(tmp_path: Path) -> None:
    stale = tmp_path / ".plan.json.ab12cd34"
    fresh = tmp_path / ".plan.json.ef56ab78"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = os.stat(stale).st_mtime - files.STALE_TEMP_AGE - 5
    os.utime(stale, (old, old))
    unrelated = tmp_path / ".keep"
    unrelated.write_bytes(b"x")
    files.write_atomic(tmp_path / "other.json", b"{}")
    assert not stale.exists()
    assert fresh.exists() and unrelated.exists()


def test_a_directory_removed_while_writing_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cleaner removing the (still empty) directory just before the temp file gets its name,
    as multus's DEL removes an emptied per-namespace status directory: the write starts over."""
    target = tmp_path / "status" / "default" / "web.json"
    link = os.link
    removed: list[bool] = []

    def racing_link(*args: object, **kwargs: object) -> None:
        if not removed:
            removed.append(True)
            target.parent.rmdir()
        link(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", racing_link)
    files.write_atomic(target, b"[]")
    assert removed and target.read_bytes() == b"[]"


def test_an_existing_file_is_swapped_out_not_renamed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename that replaces a file is the slow one under load: over a file, the names are
    exchanged and the old file unlinked; a reader holding the old file keeps its content."""
    target = tmp_path / "state.json"
    files.write_atomic(target, b"old")
    with target.open("rb") as reader:

        def no_rename_over(src: object, dst: object) -> None:
            raise AssertionError(f"renamed over {dst}")

        monkeypatch.setattr(os, "replace", no_rename_over)
        files.write_atomic(target, b"new", 0o640)
        assert reader.read() == b"old"
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_without_the_exchange_a_plain_rename_replaces_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    files.write_atomic(target, b"old")
    monkeypatch.setattr(files, "exchange_names", lambda tmp, path: False)
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_writer_killed_after_the_exchange_leaves_the_old_content_to_the_sweep(tmp_path: Path) -> None:
    """The only moment a kill leaves a name behind: the new content is in place, the old one
    under a temp name that the next write removes once it is stale."""
    target = tmp_path / "plan.json"
    files.write_atomic(target, b"old")
    pid = os.fork()
    if pid == 0:
        Path.unlink = lambda *_a, **_k: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[method-assign]
        try:
            files.write_atomic(target, b"new")
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert target.read_bytes() == b"new"
    (left,) = [p for p in tmp_path.iterdir() if p.name != "plan.json"]
    assert left.read_bytes() == b"old"
    old = left.stat().st_mtime - files.STALE_TEMP_AGE - 5
    os.utime(left, (old, old))
    files._SWEPT.pop(tmp_path, None)  # this process last looked at the directory a minute ago
    files.write_atomic(tmp_path / "other.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "plan.json"]


def test_a_directory_in_the_way_is_refused_and_left_where_it_is(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        files.write_atomic(target, b"new")
    assert target.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_process_looks_for_stale_names_at_its_first_write_then_once_per_stale_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory with a file per pod is not listed again on every write of a long-lived process."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    listed: list[Path] = []
    sweep = files.remove_stale_temp_files

    def counted(directory: Path) -> list[Path]:
        listed.append(directory)
        return sweep(directory)

    monkeypatch.setattr(files, "remove_stale_temp_files", counted)
    stale = tmp_path / ".plan.json.ab12cd34"
    stale.write_bytes(b"x")
    old = os.stat(stale).st_mtime - files.STALE_TEMP_AGE - 5
    os.utime(stale, (old, old))

    files.write_atomic(tmp_path / "a.json", b"{}")
    assert listed == [tmp_path] and not stale.exists()
    stale.write_bytes(b"x")
    os.utime(stale, (old, old))
    clock[0] += files.STALE_TEMP_AGE - 1
    files.write_atomic(tmp_path / "b.json", b"{}")
    assert listed == [tmp_path] and stale.exists(), "swept less than a stale age ago"
    clock[0] += 2
    files.write_atomic(tmp_path / "c.json", b"{}")
    assert listed == [tmp_path, tmp_path] and not stale.exists()


def test_a_new_unwatched_file_is_named_at_once_a_watched_one_arrives_by_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file not there yet needs no temp name and no rename, unless something may watch for
    it: containerd's CNI config syncer ignores a Create and waits for a Write or a Rename."""
    renamed: list[str] = []
    rename = files._rename

    def counted(tmp: Path, path: Path) -> None:
        renamed.append(path.name)
        rename(tmp, path)

    monkeypatch.setattr(files, "_rename", counted)
    files.write_atomic(tmp_path / "state.json", b"one", watched=False)
    assert renamed == [] and (tmp_path / "state.json").read_bytes() == b"one"
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    files.write_atomic(tmp_path / "state.json", b"two", watched=False)
    assert renamed == ["state.json"] and (tmp_path / "state.json").read_bytes() == b"two"
    files.write_atomic(tmp_path / "10-net.conflist", b"{}", 0o644)
    assert renamed == ["state.json", "10-net.conflist"], "a watched file arrives by a rename"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["10-net.conflist", "state.json"]
